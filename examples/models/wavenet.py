"""makemore part 5's hierarchical WaveNet, with a complete manual backward: a model file for
``jaxninja check --model examples/models/wavenet.py``.

Embedding -> three times (FlattenConsecutive(2) -> Linear without bias -> BatchNorm1d -> tanh)
-> Linear -> cross entropy, over 8 characters of context: 8 -> 4 -> 2 -> 1 positions. The first
two BatchNorms see (B, T, H) and normalise over dims (0, 1), as part 5's fixed BatchNorm1d does;
the third sees (B, H) (FlattenConsecutive squeezes T = 1) and normalises over dim 0. Variances
are Bessel-corrected (torch's ``x.var`` default), n = B*T. Sizes are the lecture's: n_embd 10,
n_hidden 64, batch 32.

Every intermediate is tapped under ``layer.name`` (``l1.hprebn``, ``l2.bndiff2``, ...), the
notebook's names, and the parameters are a nested dict (``l1.W``, ``l1.bngain``, ``out.b``).

Three classic mistakes can be planted, to see their rows fail with the right diagnosis: set
``WAVENET_MISTAKES`` (comma-separated, or ``all``) before running, or the module's ``MISTAKES``::

    dW_transposed  the bias-free Linear's dW (layer 3) as dhprebn^T x instead of x^T dhprebn
    bn_dim0        BatchNorm's backward sums over dim 0 only where the forward used (0, 1)
    dC_set         dC without accumulation: .at[x].set, repeated characters lose their share

    WAVENET_MISTAKES=all jaxninja check --model examples/models/wavenet.py
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

import jaxninja

N_EMBD, N_HIDDEN, BLOCK_SIZE, BATCH_SIZE = 10, 64, 8, 32
BN_EPS = 1e-5
LAYERS = ("l1", "l2", "l3")
ALL_MISTAKES = ("dW_transposed", "bn_dim0", "dC_set")
_chosen = os.environ.get("WAVENET_MISTAKES", "")
MISTAKES = set(ALL_MISTAKES) if _chosen == "all" else set(filter(None, _chosen.split(",")))
if MISTAKES - set(ALL_MISTAKES):
    raise ValueError(f"unknown WAVENET_MISTAKES {sorted(MISTAKES - set(ALL_MISTAKES))}")


@functools.cache
def _train():
    """The notebook's training split at 8 characters of context (names.txt via $JAXNINJA_NAMES,
    else jaxninja's default data set)."""
    return jaxninja.load_dataset(None, BLOCK_SIZE)


def _numpy_rng(key):
    """numpy's generator seeded by the jax key's bits: eager jax.random calls compile a program
    per shape (~0.2-0.5 s of CPU each), a real cost in a check that should take seconds."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())


def init(key):
    """Part 5's initialisation (weights / sqrt(fan_in), the last layer scaled by 0.1), with
    BatchNorm's gain and bias drawn near 1 and 0 rather than exactly 1 and 0: zeros could mask a
    wrong backward."""
    vocab = _train().vocab.size
    rng = _numpy_rng(key)

    def randn(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    params = {"C": randn(vocab, N_EMBD)}
    fan_in = 2 * N_EMBD
    for name in LAYERS:
        params[name] = {
            "W": randn(fan_in, N_HIDDEN) / math.sqrt(fan_in),
            "bngain": 1.0 + 0.1 * randn(N_HIDDEN),
            "bnbias": 0.1 * randn(N_HIDDEN),
        }
        fan_in = 2 * N_HIDDEN
    params["out"] = {"W": 0.1 * randn(N_HIDDEN, vocab), "b": 0.1 * randn(vocab)}
    return params


def batch(key):
    """BATCH_SIZE random training examples: contexts (B, 8) and next characters (B,)."""
    train = _train().train
    ix = _numpy_rng(key).integers(0, len(train.y), BATCH_SIZE)
    return train.x[ix], train.y[ix]


def _flatten(x):
    """FlattenConsecutive(2): (B, T, C) -> (B, T/2, 2C), squeezed to (B, 2C) when T/2 == 1."""
    b, t, c = x.shape
    x = x.reshape(b, t // 2, 2 * c)
    return x.reshape(b, 2 * c) if t // 2 == 1 else x


def _axes(x):
    """BatchNorm1d's reduction axes: (0, 1) for (B, T, H), 0 for (B, H)."""
    return (0, 1) if x.ndim == 3 else (0,)


def forward(params, batch, tap):
    """The loss, every intermediate tapped (the notebook's chunked style, per layer)."""
    x, y = batch
    h = tap("emb", params["C"][x])  # (B, 8, E)
    for name in LAYERS:
        p = params[name]
        flat = tap(f"{name}.flat", _flatten(h))
        hprebn = tap(f"{name}.hprebn", flat @ p["W"])  # Linear, no bias
        axes = _axes(hprebn)
        n = math.prod(hprebn.shape[a] for a in axes)
        bnmeani = tap(f"{name}.bnmeani", 1 / n * hprebn.sum(axes, keepdims=True))
        bndiff = tap(f"{name}.bndiff", hprebn - bnmeani)
        bndiff2 = tap(f"{name}.bndiff2", bndiff**2)
        bnvar = tap(f"{name}.bnvar", 1 / (n - 1) * bndiff2.sum(axes, keepdims=True))
        bnvar_inv = tap(f"{name}.bnvar_inv", (bnvar + BN_EPS) ** -0.5)
        bnraw = tap(f"{name}.bnraw", bndiff * bnvar_inv)
        hpreact = tap(f"{name}.hpreact", p["bngain"] * bnraw + p["bnbias"])
        h = tap(f"{name}.h", jnp.tanh(hpreact))
    logits = tap("logits", h @ params["out"]["W"] + params["out"]["b"])
    logprobs = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logprobs, y[:, None], axis=1).mean()


def backward(params, batch, acts):
    """Every gradient by hand, from the tapped values: dX = d loss / d X, by name."""
    x, y = batch
    B = x.shape[0]
    g = {}
    probs = jax.nn.softmax(acts["logits"], axis=1)
    dlogits = (probs - jax.nn.one_hot(y, probs.shape[1], dtype=probs.dtype)) / B
    g["logits"] = dlogits
    h = acts["l3.h"]
    g["out.W"] = h.T @ dlogits
    g["out.b"] = dlogits.sum(0)
    dh = dlogits @ params["out"]["W"].T
    for name in reversed(LAYERS):
        p, a = params[name], {k.split(".", 1)[1]: v for k, v in acts.items() if k.startswith(name)}
        axes = _axes(a["hprebn"])
        n = math.prod(a["hprebn"].shape[i] for i in axes)
        sum_axes = (0,) if "bn_dim0" in MISTAKES else axes
        g[f"{name}.h"] = dh
        dhpreact = (1.0 - a["h"] ** 2) * dh
        g[f"{name}.hpreact"] = dhpreact
        g[f"{name}.bngain"] = (a["bnraw"] * dhpreact).sum(sum_axes)
        g[f"{name}.bnbias"] = dhpreact.sum(sum_axes)
        dbnraw = p["bngain"] * dhpreact
        g[f"{name}.bnraw"] = dbnraw
        dbndiff = a["bnvar_inv"] * dbnraw
        dbnvar_inv = (a["bndiff"] * dbnraw).sum(sum_axes, keepdims=True)
        g[f"{name}.bnvar_inv"] = dbnvar_inv
        dbnvar = -0.5 * (a["bnvar"] + BN_EPS) ** -1.5 * dbnvar_inv
        g[f"{name}.bnvar"] = dbnvar
        dbndiff2 = jnp.broadcast_to(1 / (n - 1) * dbnvar, a["bndiff2"].shape)
        g[f"{name}.bndiff2"] = dbndiff2
        dbndiff = dbndiff + 2 * a["bndiff"] * dbndiff2
        g[f"{name}.bndiff"] = dbndiff
        dbnmeani = (-dbndiff).sum(sum_axes, keepdims=True)
        g[f"{name}.bnmeani"] = dbnmeani
        dhprebn = dbndiff + 1 / n * dbnmeani
        g[f"{name}.hprebn"] = dhprebn
        flat = a["flat"]
        flat2, dhprebn2 = flat.reshape(-1, flat.shape[-1]), dhprebn.reshape(-1, N_HIDDEN)
        if "dW_transposed" in MISTAKES and name == "l3":
            g[f"{name}.W"] = dhprebn2.T @ flat2
        else:
            g[f"{name}.W"] = flat2.T @ dhprebn2
        dflat = dhprebn @ p["W"].T
        g[f"{name}.flat"] = dflat
        prev = acts["emb"] if name == "l1" else acts[f"l{int(name[1]) - 1}.h"]
        dh = dflat.reshape(prev.shape)
    g["emb"] = dh
    dC = jnp.zeros_like(params["C"])
    dC = dC.at[x].set(dh) if "dC_set" in MISTAKES else dC.at[x].add(dh)
    g["C"] = dC
    return g


def torch_forward(params, batch, tap):
    """The same forward in torch (part 5's code, chunked), for the torch column."""
    import torch

    x, y = batch
    h = tap("emb", params["C"][x])
    for name in LAYERS:
        p = params[name]
        b, t, c = h.shape
        flat = h.view(b, t // 2, 2 * c)
        flat = tap(f"{name}.flat", flat.view(b, 2 * c) if t // 2 == 1 else flat)
        hprebn = tap(f"{name}.hprebn", flat @ p["W"])
        axes = _axes(hprebn)
        n = math.prod(hprebn.shape[a] for a in axes)
        bnmeani = tap(f"{name}.bnmeani", 1 / n * hprebn.sum(axes, keepdim=True))
        bndiff = tap(f"{name}.bndiff", hprebn - bnmeani)
        bndiff2 = tap(f"{name}.bndiff2", bndiff**2)
        bnvar = tap(f"{name}.bnvar", 1 / (n - 1) * bndiff2.sum(axes, keepdim=True))
        bnvar_inv = tap(f"{name}.bnvar_inv", (bnvar + BN_EPS) ** -0.5)
        bnraw = tap(f"{name}.bnraw", bndiff * bnvar_inv)
        hpreact = tap(f"{name}.hpreact", p["bngain"] * bnraw + p["bnbias"])
        h = tap(f"{name}.h", torch.tanh(hpreact))
    logits = tap("logits", h @ params["out"]["W"] + params["out"]["b"])
    return torch.nn.functional.cross_entropy(logits, y)
