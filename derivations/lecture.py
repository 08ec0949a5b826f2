"""The lecture's layers, stated in the statement language every layer file uses.

Each layer is a :class:`derivations.language.layer.Layer`, exactly as a person would write it in a
layer file, so it goes through the one engine: the same differentiation, delta collapse, proof,
counterexample search and printing (:mod:`derivations.engine.derive`). The forwards follow the
notebook line by line (``bnmeani``, ``bnvar`` with Bessel's n - 1, ``bnvar_inv`` with epsilon
inside the square root, ``bnraw``, ``logit_maxes``, ``counts``, ``counts_sum``, ``probs``). The
claims are the closed forms ``jaxninja/lecture/generated.py`` computes, written as its code
reads; the Exercise 1 chains (the notebook's line-by-line backward, composed) are further
claims of the same layers. :data:`KERNELS` gives each generated function its name, arguments
and returns: those signatures are a contract (``jaxninja/lecture/fused.py`` and the checks call
them).
"""

from __future__ import annotations

from typing import NamedTuple

from derivations.language.layer import Layer

EPS = "1/100000"  # BatchNorm's and LayerNorm's epsilon, inside the square root (jaxninja.model)

# the cross-entropies' shared statement: logits (n, V), integer targets, the max trick's shift
_LOGITS = {"axes": ("n", "V"), "inputs": {"logits": ("n", "V")}, "labels": {"y": (("n",), "V")}}
_SHIFTED = (
    "logit_maxes[i] = max(logits[i, j], j)",
    "norm_logits[i, j] = logits[i, j] - logit_maxes[i]",
)

cross_entropy = Layer(
    name="cross_entropy",
    title="Exercise 2: cross-entropy in one go",
    **_LOGITS,
    forward=(
        *_SHIFTED,
        "counts[i, j] = exp(norm_logits[i, j])",
        "counts_sum[i] = sum(counts[i, j], j)",
        "probs[i, j] = counts[i, j] / counts_sum[i]",
        "loss = -mean(sum(one_hot(y[i], j) * log(probs[i, j]), j), i)",
    ),
    claims={"logits": "(probs - one_hot(y)) / n"},
)

# The training step's form (issue 15, one softmax a step): the loss from log-probabilities, and
# the backward reads probs = exp(logprobs) from them instead of a second max, exp and sum.
cross_entropy_logprobs = Layer(
    name="cross_entropy_logprobs",
    title="Cross-entropy from logprobs",
    **_LOGITS,
    forward=(
        *_SHIFTED,
        "counts_sum[i] = sum(exp(norm_logits[i, j]), j)",
        "logprobs[i, j] = norm_logits[i, j] - log(counts_sum[i])",
        "loss = -mean(sum(one_hot(y[i], j) * logprobs[i, j], j), i)",
    ),
    claims={"logits": "(exp(logprobs) - one_hot(y)) / n"},
)

batchnorm = Layer(
    name="batchnorm",
    title="Exercise 3: BatchNorm in one go",
    axes=("n", "H"),
    inputs={"hprebn": ("n", "H"), "bngain": ("H",), "bnbias": ("H",)},
    constants={"eps": EPS},
    forward=(
        "bnmeani[j] = mean(hprebn[i, j], i)",
        "bndiff[i, j] = hprebn[i, j] - bnmeani[j]",
        "bnvar[j] = sum(bndiff[i, j]**2, i) / (n - 1)",
        "bnvar_inv[j] = (bnvar[j] + eps)**(-1/2)",
        "bnraw[i, j] = bndiff[i, j] * bnvar_inv[j]",
        "hpreact[i, j] = bngain[j] * bnraw[i, j] + bnbias[j]",
    ),
    upstream="dhpreact",
    claims={
        "hprebn": "(n * dhpreact - n * bnraw * sum(bnraw * dhpreact, axis=0, keepdims=True)"
        " / (n - 1) - sum(dhpreact, axis=0, keepdims=True)) * bngain * bnvar_inv / n",
        "bngain": "sum(bnraw * dhpreact, axis=0)",
        "bnbias": "sum(dhpreact, axis=0)",
    },
)

tanh = Layer(
    name="tanh",
    title="tanh",
    axes=("n", "H"),
    inputs={"hpreact": ("n", "H")},
    forward=("h[i, j] = tanh(hpreact[i, j])",),
    upstream="dh",
    claims={"hpreact": "(1 - h**2) * dh"},
)

linear = Layer(
    name="linear",
    title="Linear layer",
    axes=("n", "H", "V"),
    inputs={"x": ("n", "H"), "W": ("H", "V"), "b": ("V",)},
    forward=("out[i, j] = sum(x[i, k] * W[k, j], k) + b[j]",),
    claims={"x": "dout @ W.T", "W": "x.T @ dout", "b": "sum(dout, axis=0)"},
)

embedding = Layer(
    name="embedding",
    title="Embedding lookup",
    axes=("n", "T", "V", "E"),
    inputs={"C": ("V", "E")},
    labels={"xb": (("n", "T"), "V")},
    forward=("emb[i, k, l] = sum(one_hot(xb[i, k], j) * C[j, l], j)",),
    upstream="demb",
    claims={"C": "einsum('ntv,nte->ve', one_hot(xb), demb)"},
)

layernorm = Layer(
    name="layernorm",
    title="LayerNorm over each row (biased variance)",
    axes=("n", "H"),
    inputs={"x": ("n", "H"), "lngain": ("H",), "lnbias": ("H",)},
    constants={"eps": EPS},
    forward=(
        "lnmeani[i] = mean(x[i, j], j)",
        "lndiff[i, j] = x[i, j] - lnmeani[i]",
        "lnvar[i] = mean(lndiff[i, j]**2, j)",
        "lnvar_inv[i] = (lnvar[i] + eps)**(-1/2)",
        "lnraw[i, j] = lndiff[i, j] * lnvar_inv[i]",
        "out[i, j] = lngain[j] * lnraw[i, j] + lnbias[j]",
    ),
    claims={
        "x": "(H * dout * lngain - lnraw * sum(dout * lngain * lnraw, axis=1, keepdims=True)"
        " - sum(dout * lngain, axis=1, keepdims=True)) * lnvar_inv[:, None] / H",
        "lngain": "sum(dout * lnraw, axis=0)",
        "lnbias": "sum(dout, axis=0)",
    },
)

softmax = Layer(
    name="softmax",
    title="Softmax",
    axes=("n", "V"),
    inputs={"logits": ("n", "V")},
    forward=(
        "counts[i, j] = exp(logits[i, j])",
        "counts_sum[i] = sum(counts[i, j], j)",
        "probs[i, j] = counts[i, j] / counts_sum[i]",
    ),
    upstream="dprobs",
    claims={"logits": "(dprobs - sum(dprobs * probs, axis=1, keepdims=True)) * probs"},
)

log_softmax = Layer(
    name="log_softmax",
    title="Log-softmax",
    axes=("n", "V"),
    inputs={"logits": ("n", "V")},
    forward=(
        "counts[i, j] = exp(logits[i, j])",
        "counts_sum[i] = sum(counts[i, j], j)",
        "logprobs[i, j] = logits[i, j] - log(counts_sum[i])",
    ),
    upstream="dlogprobs",
    claims={"logits": "dlogprobs - exp(logprobs) * sum(dlogprobs, axis=1, keepdims=True)"},
)

LAYERS = (
    cross_entropy,
    batchnorm,
    tanh,
    linear,
    embedding,
    layernorm,
    softmax,
    log_softmax,
    cross_entropy_logprobs,
)

# Exercise 1: the notebook's backward one line at a time, composed into one claim per layer.
# BatchNorm: dbnraw = bngain * dhpreact; dbndiff = bnvar_inv * dbnraw + 2 * bndiff * dbndiff2,
# dbndiff2 = dbnvar / (n - 1), dbnvar = -1/2 (bnvar + eps)^(-3/2) dbnvar_inv, dbnvar_inv =
# sum(bndiff * dbnraw); dhprebn = dbndiff + dbnmeani / n with dbnmeani = -sum(dbndiff).
_DBNDIFF = (
    "(bnvar_inv * bngain * dhpreact + 2 * bndiff / (n - 1) * (-1/2 * (bnvar + eps)**(-3/2)"
    " * sum(bndiff * bngain * dhpreact, axis=0)))"
)
# Cross-entropy: dlogprobs = -one_hot(y) / n; dprobs = dlogprobs / probs; dcounts =
# dprobs / counts_sum + dcounts_sum, dcounts_sum = -counts_sum^-2 * sum(counts * dprobs);
# dlogits = counts * dcounts (the notebook's dlogit_maxes term is the shift's: proved 0).
_DPROBS = "(-one_hot(y) / n / probs)"
CHAINS = {
    "batchnorm": {"hprebn": f"{_DBNDIFF} - sum({_DBNDIFF}, axis=0) / n"},
    "cross_entropy": {
        "logits": f"counts * ({_DPROBS} / counts_sum[:, None]"
        f" - counts_sum[:, None]**(-2) * sum(counts * {_DPROBS}, axis=1, keepdims=True))"
    },
}


class Kernel(NamedTuple):
    """One function of ``jaxninja/lecture/generated.py``: a lecture layer's backward, printed from
    its proved claims, taking the arrays the training forward already has (``bnraw``, not
    ``hprebn``)."""

    name: str
    layer: Layer
    args: tuple[str, ...]  # upstream, inputs, intermediates or labels, in the call's order
    order: tuple[str, ...]  # inputs whose gradients are computed, in this order (reuse)
    returns: tuple[str, ...]  # inputs whose gradients are returned, in this order
    doc: str
    kept: tuple[str, ...] = ()  # gradients of (H,) gains returned as (1, H), like the gains
    derived: tuple[str, ...] = ()  # printed from the derived gradient, not the claim's text
    sizes: tuple[tuple[str, str], ...] = ()  # (axis, int argument): sizes no array carries


KERNELS = (
    Kernel(
        "cross_entropy_backward",
        cross_entropy,
        ("logits", "y"),
        ("logits",),
        ("logits",),
        "dlogits of the mean cross-entropy of logits (n, V) and integer targets y (n,).",
    ),
    Kernel(
        "batchnorm_backward",
        batchnorm,
        ("dhpreact", "bnraw", "bnvar_inv", "bngain"),
        ("bnbias", "bngain", "hprebn"),
        ("hprebn", "bngain", "bnbias"),
        "(dhprebn, dbngain, dbnbias) of BatchNorm with Bessel's n - 1; gains are (1, H).",
        kept=("bngain", "bnbias"),
    ),
    Kernel(
        "tanh_backward",
        tanh,
        ("dh", "h"),
        ("hpreact",),
        ("hpreact",),
        "dhpreact of h = tanh(hpreact), from h itself.",
    ),
    Kernel(
        "linear_backward",
        linear,
        ("dout", "x", "W"),
        ("x", "W", "b"),
        ("x", "W", "b"),
        "(dx, dW, db) of out = x @ W + b; db is 1-D like b.",
    ),
    Kernel(
        "embedding_backward",
        embedding,
        ("demb", "xb", "vocab_size"),
        ("C",),
        ("C",),
        "dC of emb = C[xb]: demb (n, block, E) scatter-added into a (vocab_size, E) table.",
        derived=("C",),
        sizes=(("V", "vocab_size"),),
    ),
    Kernel(
        "layernorm_backward",
        layernorm,
        ("dout", "lnraw", "lnvar_inv", "lngain"),
        ("lnbias", "lngain", "x"),
        ("x", "lngain", "lnbias"),
        "(dx, dlngain, dlnbias) of LayerNorm over rows, biased variance; lnvar_inv (n,).",
        kept=("lngain", "lnbias"),
    ),
    Kernel(
        "softmax_backward",
        softmax,
        ("dprobs", "probs"),
        ("logits",),
        ("logits",),
        "dlogits of probs = softmax(logits, axis=1), from probs itself.",
    ),
    Kernel(
        "log_softmax_backward",
        log_softmax,
        ("dlogprobs", "logprobs"),
        ("logits",),
        ("logits",),
        "dlogits of logprobs = log_softmax(logits, axis=1), from logprobs itself.",
    ),
    Kernel(
        "cross_entropy_logprobs_backward",
        cross_entropy_logprobs,
        ("logprobs", "y"),
        ("logits",),
        ("logits",),
        "dlogits of the mean cross-entropy from the loss's logprobs (n, V) and targets y (n,).",
    ),
)
