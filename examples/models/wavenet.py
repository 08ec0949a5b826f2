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

The same file trains (``jaxninja train --model examples/models/wavenet.py:part5``). The network
is a class, :class:`WaveNet`, whose sizes and init style are parameters and whose methods are
the model protocol; the module's top-level functions are the check model above (10/64 sizes,
perturbed BatchNorm gains), and ``part5`` is part 5's network as the lecture trains it: n_embd
24, n_hidden 128 (76,579 parameters at 27 characters), C ~ randn, each Linear's W ~ randn /
sqrt(fan_in), the output layer's W times 0.1 and its bias 0, BatchNorm gain 1 and bias 0; SGD
for 200,000 steps at lr 0.1, 0.01 from step 150,000 (``train_defaults``), and evaluation with
BatchNorm's running statistics, momentum 0.1 (``stats_init``, ``stats_update``, ``logits``).
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
MOMENTUM = 0.1  # BatchNorm's running statistics: run = (1 - MOMENTUM) * run + MOMENTUM * batch
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


def _check_context(x) -> None:
    """Three FlattenConsecutive(2) take 8 positions to 1: any other context length would leave
    a time axis at the output layer. Shapes are static, so this holds under jit too."""
    if x.ndim != 2 or x.shape[1] != BLOCK_SIZE:
        raise ValueError(
            f"wavenet needs contexts of {BLOCK_SIZE} characters (block_size {BLOCK_SIZE}: "
            f"{len(LAYERS)} layers each halve the context), got x of shape {tuple(x.shape)}"
        )


def forward(params, batch, tap):
    """The loss, every intermediate tapped (the notebook's chunked style, per layer)."""
    x, y = batch
    _check_context(x)
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
        flat2, dhprebn2 = flat.reshape(-1, flat.shape[-1]), dhprebn.reshape(-1, dhprebn.shape[-1])
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


# ---------------------------------------------------------------- sizes and init as parameters


def _layer_shapes(n_hidden: int) -> dict[str, tuple[int, ...]]:
    """Each layer's BatchNorm statistics shape: (1, 1, H) where it sees (B, T, H), (1, H) where
    FlattenConsecutive has squeezed T = 1 (the last layer), as part 5's running stats are."""
    shapes, t = {}, BLOCK_SIZE
    for name in LAYERS:
        t //= 2
        shapes[name] = (1, 1, n_hidden) if t > 1 else (1, n_hidden)
    return shapes


def _batch_stats(hprebn):
    """BatchNorm1d's batch mean and Bessel-corrected variance over :func:`_axes`."""
    axes = _axes(hprebn)
    n = math.prod(hprebn.shape[a] for a in axes)
    mean = hprebn.mean(axes, keepdims=True)
    return mean, ((hprebn - mean) ** 2).sum(axes, keepdims=True) / (n - 1)


class WaveNet:
    """The hierarchical WaveNet at given sizes and init style, as a model of the protocol
    (``check --model``'s init / batch / forward / backward / torch_forward, and training's
    train_defaults / stats_init / stats_update / logits).

    ``init_style``: ``"check"`` draws BatchNorm's gain and bias near 1 and 0 (zeros could mask a
    wrong backward) and the output layer as 0.1 * randn without / sqrt(fan_in); ``"part5"`` is
    part 5's init exactly (gain 1, bias 0, output W = 0.1 * randn / sqrt(n_hidden), b = 0).

    The forward and backward do not depend on the sizes (they read them off the arrays), so
    they are the module's functions; only the init and the statistics' shapes do.
    """

    STYLES = ("check", "part5")

    def __init__(self, n_embd: int, n_hidden: int, init_style: str, train_defaults: dict):
        if init_style not in self.STYLES:
            raise ValueError(f"init_style {init_style!r}: expected one of {self.STYLES}")
        self.n_embd, self.n_hidden, self.init_style = n_embd, n_hidden, init_style
        self.train_defaults = dict(train_defaults)

    def __repr__(self) -> str:
        return f"WaveNet({self.n_embd}, {self.n_hidden}, {self.init_style!r})"

    forward = staticmethod(forward)
    backward = staticmethod(backward)
    torch_forward = staticmethod(torch_forward)
    batch = staticmethod(batch)

    def init(self, key, vocab_size: int | None = None) -> dict:
        """The parameters, float32, drawn eagerly from numpy's generator seeded by the key's
        bits (:func:`_numpy_rng`): deterministic per key, and no compile (an eager
        ``jax.random.normal`` compiles a program per shape, ~0.2-0.5 s each on this CPU; one
        jitted init would still cost a compile per vocabulary size for a one-off draw).
        ``vocab_size`` None: the check data's vocabulary (``check --model`` calls ``init(key)``;
        the trainer passes its data's)."""
        vocab = _train().vocab.size if vocab_size is None else int(vocab_size)
        rng = _numpy_rng(key)
        E, H = self.n_embd, self.n_hidden

        def randn(*shape):
            return rng.standard_normal(shape, dtype=np.float32)

        params = {"C": randn(vocab, E)}
        fan_in = 2 * E
        for name in LAYERS:
            W = randn(fan_in, H) / math.sqrt(fan_in)
            if self.init_style == "check":
                gain, bias = 1.0 + 0.1 * randn(H), 0.1 * randn(H)
            else:
                gain, bias = np.ones(H, np.float32), np.zeros(H, np.float32)
            params[name] = {"W": W, "bngain": gain, "bnbias": bias}
            fan_in = 2 * H
        if self.init_style == "check":
            params["out"] = {"W": 0.1 * randn(H, vocab), "b": 0.1 * randn(vocab)}
        else:
            W = 0.1 * (randn(H, vocab) / math.sqrt(H))
            params["out"] = {"W": W, "b": np.zeros(vocab, np.float32)}
        return params

    def stats_init(self, params) -> dict:
        """Part 5's BatchNorm1d buffers before training: running mean 0, running variance 1,
        one pair per layer, shaped as that layer's batch statistics (:func:`_layer_shapes`).
        numpy arrays, as the parameters are: no program compiled for them eagerly."""
        stats = {}
        for name, shape in _layer_shapes(params[LAYERS[0]]["W"].shape[1]).items():
            dtype = params[name]["W"].dtype
            stats[name] = {"mean": np.zeros(shape, dtype), "var": np.ones(shape, dtype)}
        return stats

    def stats_update(self, stats, acts) -> dict:
        """One step of part 5's running statistics, from the step's tapped batch mean
        (``bnmeani``) and Bessel-corrected variance (``bnvar``): ``0.9 * run + 0.1 * batch``,
        as BatchNorm1d's update under torch.no_grad. Pure, jittable."""
        new = {}
        for name in LAYERS:
            run = stats[name]
            mean, var = acts[f"{name}.bnmeani"], acts[f"{name}.bnvar"]
            new[name] = {
                "mean": (1 - MOMENTUM) * run["mean"] + MOMENTUM * mean,
                "var": (1 - MOMENTUM) * run["var"] + MOMENTUM * var,
            }
        return new

    def logits(self, params, stats, x):
        """Next-character logits (N, vocab) of contexts ``x`` (N, 8) at evaluation: BatchNorm
        normalises with the running statistics ``stats``, ``(x - mean) / sqrt(var + eps)`` as
        part 5's BatchNorm1d does when not training, so each row depends on its own context only
        (any split may be cut into pieces). ``stats`` None: ``x``'s own batch statistics.
        Jittable."""
        _check_context(x)
        h = params["C"][x]
        for name in LAYERS:
            p = params[name]
            hprebn = _flatten(h) @ p["W"]
            if stats is None:
                mean, var = _batch_stats(hprebn)
            else:
                mean, var = stats[name]["mean"], stats[name]["var"]
            xhat = (hprebn - mean) / jnp.sqrt(var + BN_EPS)
            h = jnp.tanh(p["bngain"] * xhat + p["bnbias"])
        return h @ params["out"]["W"] + params["out"]["b"]


CHECK = WaveNet(N_EMBD, N_HIDDEN, "check", {"block_size": BLOCK_SIZE, "batch_size": BATCH_SIZE})
"""The check model: the module's top-level functions (``--model examples/models/wavenet.py``)."""

part5 = WaveNet(
    24,
    128,
    "part5",
    {
        "block_size": BLOCK_SIZE,
        "batch_size": BATCH_SIZE,
        "steps": 200_000,
        "lr": 0.1,
        "lr_decay_step": 150_000,
        "lr_decay": 0.1,
    },
)
"""Part 5's network and schedule: ``--model examples/models/wavenet.py:part5``."""

init = CHECK.init
train_defaults = CHECK.train_defaults
stats_init = CHECK.stats_init
stats_update = CHECK.stats_update
logits = CHECK.logits
