"""Each layer's forward in index notation, with a symbolic batch size n.

The forwards follow the notebook line by line (``bnmeani``, ``bnvar`` with Bessel's n - 1,
``bnvar_inv`` with epsilon inside the square root, ``bnraw``, ``counts``, ``counts_sum``,
``probs``, ...). Every layer's objective writes the intermediates out in full, so that sympy
differentiates the real forward; the naming identities then give the notebook's names back.
"""

from __future__ import annotations

import sympy as sp

from derivations.indices import (
    E,
    H,
    T,
    V,
    a,
    array,
    b,
    batch_sum,
    class_sum,
    e,
    eps,
    i,
    j,
    k,
    l,
    n,
    p,
    q,
    r,
    s,
    t,
)
from derivations.spec import AxisMax, Gradient, Identity, Layer

HALF = sp.Rational(1, 2)

# ---------------------------------------------------------------- cross-entropy (Exercise 2)
logits, y, logit_maxes = array("logits"), array("y"), array("logit_maxes")
counts, counts_sum, probs = array("counts"), array("counts_sum"), array("probs")


def _counts(row: sp.Expr, col: sp.Expr) -> sp.Expr:
    return sp.exp(logits[row, col] - logit_maxes[row])


def cross_entropy() -> Layer:
    """loss = -mean log probs[i, y_i], from the max-shifted logits (any shift)."""

    def counts_sum_of(row):
        return class_sum(_counts(row, l), l)

    loss = (
        -batch_sum(class_sum(sp.KroneckerDelta(j, y[i]) * sp.log(_counts(i, j) / counts_sum_of(i))))
        / n
    )
    return Layer(
        name="cross_entropy",
        title="Exercise 2: cross-entropy in one go",
        forward=(
            (counts[i, j], sp.exp(logits[i, j] - logit_maxes[i])),
            (counts_sum[i], class_sum(counts[i, l], l)),
            (probs[i, j], counts[i, j] / counts_sum[i]),
            (sp.Symbol("loss"), -batch_sum(sp.log(probs[i, y[i]])) / n),
        ),
        objective=loss,
        naming=(
            Identity(sp.exp(logits[a, b] - logit_maxes[a]), counts[a, b], "definition of counts"),
            Identity(
                sp.exp(logit_maxes[a] - logits[a, b]), 1 / counts[a, b], "definition of counts"
            ),
            Identity(class_sum(counts[a, l], l), counts_sum[a], "definition of counts_sum"),
        ),
        facts=(Identity(class_sum(counts[a, j]), counts_sum[a], "definition of counts_sum"),),
        unfold=(Identity(probs[a, b], counts[a, b] / counts_sum[a], "definition of probs"),),
        kernel_defs=(
            (logit_maxes[p], AxisMax(logits[p, j], j)),
            (counts[p, q], sp.exp(logits[p, q] - logit_maxes[p])),
            (counts_sum[p], class_sum(counts[p, j])),
            (probs[p, q], counts[p, q] / counts_sum[p]),
        ),
        gradients=(
            Gradient("dlogit_maxes", logit_maxes[p], sp.S.Zero),
            Gradient("dlogits", logits[p, q], (probs[p, q] - sp.KroneckerDelta(q, y[p])) / n),
        ),
        definitions={
            counts: _counts,
            counts_sum: lambda row: class_sum(_counts(row, l), l),
            probs: lambda row, col: _counts(row, col) / class_sum(_counts(row, l), l),
        },
        sizes={V: 3},
    )


# ---------------------------------------------------------------- BatchNorm (Exercise 3)
hprebn, dhpreact, bngain, bnbias = (array(x) for x in ("hprebn", "dhpreact", "bngain", "bnbias"))
bnmeani, bndiff, bnvar, bnraw = (array(x) for x in ("bnmeani", "bndiff", "bnvar", "bnraw"))
bnvar_inv = array("bnvar_inv", positive=True)  # positive, or (x**-2)**(-1/2) stays unsimplified


def _bnmean(col: sp.Expr) -> sp.Expr:
    return batch_sum(hprebn[l, col], l) / n


def _bnvar(col: sp.Expr) -> sp.Expr:
    return batch_sum((hprebn[k, col] - _bnmean(col)) ** 2, k) / (n - 1)  # Bessel: n - 1


def _bnvar_inv(col: sp.Expr) -> sp.Expr:
    return (_bnvar(col) + eps) ** -HALF


def batchnorm() -> Layer:
    """hpreact = bngain * (hprebn - mean) / sqrt(var + eps) + bnbias, var with n - 1."""
    hpreact = bngain[j] * (hprebn[i, j] - _bnmean(j)) * _bnvar_inv(j) + bnbias[j]
    dbnraw_sum = batch_sum(bnraw[i, q] * dhpreact[i, q])
    return Layer(
        name="batchnorm",
        title="Exercise 3: BatchNorm in one go",
        forward=(
            (bnmeani[j], batch_sum(hprebn[l, j], l) / n),
            (bndiff[i, j], hprebn[i, j] - bnmeani[j]),
            (bnvar[j], batch_sum(bndiff[k, j] ** 2, k) / (n - 1)),
            (bnvar_inv[j], (bnvar[j] + eps) ** -HALF),
            (bnraw[i, j], bndiff[i, j] * bnvar_inv[j]),
            (array("hpreact")[i, j], bngain[j] * bnraw[i, j] + bnbias[j]),
        ),
        objective=batch_sum(class_sum(dhpreact[i, j] * hpreact, j, H)),
        naming=(
            Identity(batch_sum(hprebn[l, a], l), n * bnmeani[a], "definition of bnmeani"),
            Identity(
                batch_sum((hprebn[k, a] - bnmeani[a]) ** 2, k),
                (n - 1) * bnvar[a],
                "definition of bnvar (Bessel: n - 1)",
            ),
            Identity(bnvar[a], bnvar_inv[a] ** -2 - eps, "bnvar_inv = (bnvar + eps)^(-1/2) > 0"),
            Identity(hprebn[a, b], bndiff[a, b] + bnmeani[b], "definition of bndiff"),
            Identity(bndiff[a, b], bnraw[a, b] / bnvar_inv[b], "definition of bnraw"),
        ),
        facts=(
            Identity(
                batch_sum(bnraw[i, a]), sp.S.Zero, "deviations from the batch mean sum to zero"
            ),
        ),
        unfold=(),
        kernel_defs=(),
        gradients=(
            Gradient("dbnbias", bnbias[q], batch_sum(dhpreact[i, q])),
            Gradient("dbngain", bngain[q], dbnraw_sum),
            Gradient(
                "dhprebn",
                hprebn[p, q],
                bngain[q]
                * bnvar_inv[q]
                / n
                * (
                    n * dhpreact[p, q]
                    - batch_sum(dhpreact[i, q])
                    - n / (n - 1) * bnraw[p, q] * dbnraw_sum
                ),
            ),
        ),
        definitions={
            bnmeani: _bnmean,
            bnvar: _bnvar,
            bnvar_inv: _bnvar_inv,
            bndiff: lambda row, col: hprebn[row, col] - _bnmean(col),
            bnraw: lambda row, col: (hprebn[row, col] - _bnmean(col)) * _bnvar_inv(col),
        },
        sizes={H: 2},
    )


# ---------------------------------------------------------------- tanh, linear, embedding
hpreact, h, dh = array("hpreact"), array("h"), array("dh")


def tanh() -> Layer:
    """h = tanh(hpreact)."""
    return Layer(
        name="tanh",
        title="tanh",
        forward=((h[i, j], sp.tanh(hpreact[i, j])),),
        objective=batch_sum(class_sum(dh[i, j] * sp.tanh(hpreact[i, j]), j, H)),
        naming=(Identity(sp.tanh(hpreact[a, b]), h[a, b], "definition of h"),),
        facts=(),
        unfold=(),
        kernel_defs=(),
        gradients=(Gradient("dhpreact", hpreact[p, q], (1 - h[p, q] ** 2) * dh[p, q]),),
        definitions={h: lambda row, col: sp.tanh(hpreact[row, col])},
        sizes={H: 2},
    )


x, W, bias, dout, out = array("x"), array("W"), array("b"), array("dout"), array("out")


def linear() -> Layer:
    """out = x @ W + b, x (n, H), W (H, V), b (V,)."""
    out_ij = class_sum(x[i, k] * W[k, j], k, H) + bias[j]
    return Layer(
        name="linear",
        title="Linear layer",
        forward=((out[i, j], out_ij),),
        objective=batch_sum(class_sum(dout[i, j] * out_ij)),
        naming=(),
        facts=(),
        unfold=(),
        kernel_defs=(),
        gradients=(
            Gradient("dx", x[p, q], class_sum(dout[p, j] * W[q, j])),
            Gradient("dW", W[p, q], batch_sum(x[i, p] * dout[i, q])),
            Gradient("db", bias[q], batch_sum(dout[i, q])),
        ),
        definitions={},
        sizes={H: 2, V: 2},
    )


C, xb, emb, demb = array("C"), array("xb"), array("emb"), array("demb")


def embedding() -> Layer:
    """emb[i, t, e] = C[xb[i, t], e]: a lookup, whose backward is a scatter-add."""
    return Layer(
        name="embedding",
        title="Embedding lookup",
        forward=((emb[i, t, e], C[xb[i, t], e]),),
        objective=sp.Sum(
            demb[i, t, e] * C[xb[i, t], e], (i, 0, n - 1), (t, 0, T - 1), (e, 0, E - 1)
        ),
        naming=(),
        facts=(),
        unfold=(),
        kernel_defs=(),
        gradients=(
            Gradient(
                "dC",
                C[r, s],
                sp.Sum(
                    sp.KroneckerDelta(r, xb[i, t]) * demb[i, t, s], (i, 0, n - 1), (t, 0, T - 1)
                ),
            ),
        ),
        definitions={},
        sizes={V: 3, T: 2, E: 2},
    )


# ---------------------------------------------------------------- LayerNorm, softmax
lnmeani, lndiff, lnvar, lnraw = (array(x) for x in ("lnmeani", "lndiff", "lnvar", "lnraw"))
lnvar_inv = array("lnvar_inv", positive=True)
lngain, lnbias, dlnraw = array("lngain"), array("lnbias"), array("dlnraw")


def _lnmean(row: sp.Expr) -> sp.Expr:
    return class_sum(x[row, l], l, H) / H


def _lnvar(row: sp.Expr) -> sp.Expr:
    return class_sum((x[row, k] - _lnmean(row)) ** 2, k, H) / H  # biased, as torch's LayerNorm


def _lnvar_inv(row: sp.Expr) -> sp.Expr:
    return (_lnvar(row) + eps) ** -HALF


def layernorm() -> Layer:
    """out = lngain * (x - mean) / sqrt(var + eps) + lnbias over each row's H features."""
    out_ij = lngain[j] * (x[i, j] - _lnmean(i)) * _lnvar_inv(i) + lnbias[j]
    dlnraw_dot = class_sum(dlnraw[p, j] * lnraw[p, j], j, H)
    return Layer(
        name="layernorm",
        title="LayerNorm (the machinery is general)",
        forward=(
            (lnmeani[i], class_sum(x[i, l], l, H) / H),
            (lndiff[i, j], x[i, j] - lnmeani[i]),
            (lnvar[i], class_sum(lndiff[i, k] ** 2, k, H) / H),
            (lnvar_inv[i], (lnvar[i] + eps) ** -HALF),
            (lnraw[i, j], lndiff[i, j] * lnvar_inv[i]),
            (out[i, j], lngain[j] * lnraw[i, j] + lnbias[j]),
        ),
        objective=batch_sum(class_sum(dout[i, j] * out_ij, j, H)),
        naming=(
            Identity(class_sum(x[a, l], l, H), H * lnmeani[a], "definition of lnmeani"),
            Identity(
                class_sum((x[a, k] - lnmeani[a]) ** 2, k, H),
                H * lnvar[a],
                "definition of lnvar (biased: H)",
            ),
            Identity(lnvar[a], lnvar_inv[a] ** -2 - eps, "lnvar_inv = (lnvar + eps)^(-1/2) > 0"),
            Identity(x[a, b], lndiff[a, b] + lnmeani[a], "definition of lndiff"),
            Identity(lndiff[a, b], lnraw[a, b] / lnvar_inv[a], "definition of lnraw"),
        ),
        facts=(
            Identity(
                class_sum(lnraw[a, j], j, H), sp.S.Zero, "deviations from the row mean sum to zero"
            ),
        ),
        unfold=(Identity(dlnraw[a, b], lngain[b] * dout[a, b], "dlnraw = lngain * dout"),),
        kernel_defs=((dlnraw[p, q], lngain[q] * dout[p, q]),),
        gradients=(
            Gradient("dlnbias", lnbias[q], batch_sum(dout[i, q])),
            Gradient("dlngain", lngain[q], batch_sum(lnraw[i, q] * dout[i, q])),
            Gradient(
                "dx",
                x[p, q],
                lnvar_inv[p]
                / H
                * (H * dlnraw[p, q] - class_sum(dlnraw[p, j], j, H) - lnraw[p, q] * dlnraw_dot),
            ),
        ),
        definitions={
            lnmeani: _lnmean,
            lnvar: _lnvar,
            lnvar_inv: _lnvar_inv,
            lndiff: lambda row, col: x[row, col] - _lnmean(row),
            lnraw: lambda row, col: (x[row, col] - _lnmean(row)) * _lnvar_inv(row),
            dlnraw: lambda row, col: lngain[col] * dout[row, col],
        },
        sizes={H: 2},
    )


dprobs, logprobs, dlogprobs = array("dprobs"), array("logprobs"), array("dlogprobs")
_SOFTMAX_NAMING = (
    Identity(class_sum(sp.exp(logits[a, l]), l), counts_sum[a], "definition of counts_sum"),
    Identity(sp.exp(logits[a, b]), counts[a, b], "definition of counts (no shift needed)"),
)
_SOFTMAX_FACTS = (Identity(class_sum(counts[a, j]), counts_sum[a], "definition of counts_sum"),)
_SOFTMAX_DEFS = {
    counts: lambda row, col: sp.exp(logits[row, col]),
    counts_sum: lambda row: class_sum(sp.exp(logits[row, l]), l),
    probs: lambda row, col: sp.exp(logits[row, col]) / class_sum(sp.exp(logits[row, l]), l),
    logprobs: lambda row, col: logits[row, col] - sp.log(class_sum(sp.exp(logits[row, l]), l)),
}


def softmax() -> Layer:
    """probs = softmax(logits) along the class axis."""
    probs_ij = sp.exp(logits[i, j]) / class_sum(sp.exp(logits[i, l]), l)
    return Layer(
        name="softmax",
        title="Softmax",
        forward=((probs[i, j], probs_ij),),
        objective=batch_sum(class_sum(dprobs[i, j] * probs_ij)),
        naming=_SOFTMAX_NAMING,
        facts=_SOFTMAX_FACTS,
        unfold=(Identity(probs[a, b], counts[a, b] / counts_sum[a], "definition of probs"),),
        kernel_defs=(),
        gradients=(
            Gradient(
                "dlogits",
                logits[p, q],
                probs[p, q] * (dprobs[p, q] - class_sum(dprobs[p, j] * probs[p, j])),
            ),
        ),
        definitions=_SOFTMAX_DEFS,
        sizes={V: 3},
    )


def log_softmax() -> Layer:
    """logprobs = log_softmax(logits) along the class axis."""
    logprobs_ij = logits[i, j] - sp.log(class_sum(sp.exp(logits[i, l]), l))
    return Layer(
        name="log_softmax",
        title="Log-softmax",
        forward=((logprobs[i, j], logprobs_ij),),
        objective=batch_sum(class_sum(dlogprobs[i, j] * logprobs_ij)),
        naming=_SOFTMAX_NAMING,
        facts=_SOFTMAX_FACTS,
        unfold=(Identity(probs[a, b], counts[a, b] / counts_sum[a], "definition of probs"),),
        kernel_defs=((probs[p, q], sp.exp(logprobs[p, q])),),
        gradients=(
            Gradient(
                "dlogits", logits[p, q], dlogprobs[p, q] - probs[p, q] * class_sum(dlogprobs[p, j])
            ),
        ),
        definitions=_SOFTMAX_DEFS,
        sizes={V: 3},
    )


def cross_entropy_logprobs() -> Layer:
    """Exercise 2 from the log-probabilities the loss already computed: the step's forward takes
    ``logprobs = logits - logit_maxes - log(counts_sum)`` for the loss, and the backward reads
    ``probs = exp(logprobs)`` from it instead of a second max, exp and sum (one softmax a step).
    The same loss as :func:`cross_entropy`, so the same closed form; what is new is the kernel's
    ``probs``, checked equal to ``counts / counts_sum``."""
    layer = cross_entropy()

    def logprobs_of(row: sp.Expr, col: sp.Expr) -> sp.Expr:
        shifted = logits[row, col] - logit_maxes[row]
        return shifted - sp.log(class_sum(_counts(row, l), l))

    return layer._replace(
        name="cross_entropy_logprobs",
        title="Cross-entropy from logprobs",
        forward=(
            *layer.forward[:2],
            (logprobs[i, j], logits[i, j] - logit_maxes[i] - sp.log(counts_sum[i])),
            (sp.Symbol("loss"), -batch_sum(logprobs[i, y[i]]) / n),
        ),
        objective=-batch_sum(class_sum(sp.KroneckerDelta(j, y[i]) * logprobs_of(i, j))) / n,
        kernel_defs=((probs[p, q], sp.exp(logprobs[p, q])),),
        definitions={**layer.definitions, logprobs: logprobs_of},
    )


def all_layers() -> tuple[Layer, ...]:
    """Every layer, the lecture's two exercises first."""
    return (
        cross_entropy(),
        batchnorm(),
        tanh(),
        linear(),
        embedding(),
        layernorm(),
        softmax(),
        log_softmax(),
        cross_entropy_logprobs(),
    )
