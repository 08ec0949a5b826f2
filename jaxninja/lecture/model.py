"""The lecture's MLP: embedding -> linear -> BatchNorm (Bessel variance) -> tanh -> linear -> CE.

``forward_chunked`` is the notebook's forward, "chunkated" into the small steps that Exercise 1
backpropagates through one at a time; it returns every intermediate by its notebook name.
``loss_fused`` / ``logits_fused`` are the same model in a few library calls, for training and
evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

BN_EPS = 1e-5


class Params(NamedTuple):
    """The seven parameter groups, in the notebook's order (a pytree jax can differentiate)."""

    C: jax.Array  # (vocab_size, n_embd) embedding table
    W1: jax.Array  # (block_size * n_embd, n_hidden)
    b1: jax.Array  # (n_hidden,) useless because of BatchNorm, kept as in the lecture
    W2: jax.Array  # (n_hidden, vocab_size)
    b2: jax.Array  # (vocab_size,)
    bngain: jax.Array  # (1, n_hidden)
    bnbias: jax.Array  # (1, n_hidden)


class Intermediates(NamedTuple):
    """Every value of the chunked forward, in notebook order, ending with the loss."""

    emb: jax.Array
    embcat: jax.Array
    hprebn: jax.Array
    bnmeani: jax.Array
    bndiff: jax.Array
    bndiff2: jax.Array
    bnvar: jax.Array
    bnvar_inv: jax.Array
    bnraw: jax.Array
    hpreact: jax.Array
    h: jax.Array
    logits: jax.Array
    logit_maxes: jax.Array
    norm_logits: jax.Array
    counts: jax.Array
    counts_sum: jax.Array
    counts_sum_inv: jax.Array
    probs: jax.Array
    logprobs: jax.Array
    loss: jax.Array


class BNStats(NamedTuple):
    """BatchNorm statistics calibrated over a whole split, used for evaluation and sampling."""

    mean: jax.Array  # (1, n_hidden)
    var: jax.Array  # (1, n_hidden), Bessel-corrected


def param_shapes(
    vocab_size: int, n_embd: int, n_hidden: int, block_size: int
) -> tuple[tuple[int, ...], ...]:
    """The shapes of the seven parameter groups, in :class:`Params` order."""
    fan_in = n_embd * block_size
    return (
        (vocab_size, n_embd),
        (fan_in, n_hidden),
        (n_hidden,),
        (n_hidden, vocab_size),
        (vocab_size,),
        (1, n_hidden),
        (1, n_hidden),
    )


def draw_normals(
    key: jax.Array, shapes: tuple[tuple[int, ...], ...], dtype: jnp.dtype
) -> list[jax.Array]:
    """``jax.random.normal(k_i, shapes[i], dtype)`` for the keys ``k_i`` of
    ``jax.random.split(key, len(shapes))``, bit for bit, drawn as one vmapped draw.

    Why one draw: each distinct shape of ``jax.random.normal`` is its own XLA program, and
    compiling the seven of them took 2-3 s of a run's start (one compiles in ~0.3 s). With
    partitionable threefry (jax's default) value ``j`` of a draw depends only on the key and
    ``j``, so the first ``n`` values of a longer draw are the draw of ``n`` values; without it
    each shape is drawn on its own."""
    keys = jax.random.split(key, len(shapes))
    sizes = [math.prod(shape) for shape in shapes]
    if not jax.config.jax_threefry_partitionable:
        return [jax.random.normal(k, s, dtype) for k, s in zip(keys, shapes, strict=True)]
    z = jax.vmap(lambda k: jax.random.normal(k, (max(sizes),), dtype))(keys)
    return [z[i, :n].reshape(s) for i, (n, s) in enumerate(zip(sizes, shapes, strict=True))]


W1_GAIN = 5 / 3  # tanh's gain: W1 is drawn times 5/3 over sqrt(fan_in), as in the notebook


def w1_scale(shapes: tuple[tuple[int, ...], ...]) -> tuple[float, float]:
    """W1's gain and divisor, :data:`W1_GAIN` and sqrt(fan_in) (W1's rows), for
    :func:`draw_scaled`."""
    return W1_GAIN, shapes[1][0] ** 0.5


def draw_scaled(
    key: jax.Array, shapes: tuple[tuple[int, ...], ...], dtype: jnp.dtype, gain: Any, divisor: Any
) -> list[jax.Array]:
    """:func:`draw_normals` with W1's scale, ``W1 * gain / divisor``, applied in the same program.

    Why here and why as arguments: as traced scalars (``gain`` = :data:`W1_GAIN`, ``divisor`` =
    sqrt(fan_in)) XLA multiplies and then divides exactly as jax's two eager ops do; written as
    constants it folds them into one multiply by a rounded reciprocal, an ulp off. Done on the
    host it would be a program of its own to compile (0.2 s of a run's start)."""
    normals = draw_normals(key, shapes, dtype)
    normals[1] = normals[1] * gain / divisor
    return normals


@partial(jax.jit, static_argnames=("shapes", "dtype"))
def _normals(key: jax.Array, gain: Any, divisor: Any, shapes: tuple, dtype: jnp.dtype):
    return draw_scaled(key, shapes, dtype, gain, divisor)


def divide(x: Any, d: float) -> jax.Array:
    """``x / d`` as a jax op, also for a numpy ``x``: XLA divides by a scalar as a multiply by
    its float reciprocal, an ulp away from numpy's correctly rounded division at times, so a
    value computed on the host stays the value jax's eager ops gave."""
    return (x if isinstance(x, jax.Array) else jax.device_put(x)) / d


def scale_rest(normals: list[Any]) -> Params:
    """The notebook's scales of every group but W1 (already scaled: :func:`draw_scaled`),
    applied to standard normals: numpy arrays (then as jax's eager ops round them) or traced
    jax arrays.

    Why numpy: inside one XLA program ``z * 0.1 + 1.0`` becomes a fused multiply-add, an ulp
    away from the two roundings of separate operations, while each numpy operation rounds once,
    as an eager jax op does.
    """
    C, W1, b1, W2, b2, g, b = normals
    return Params(C, W1, b1 * 0.1, W2 * 0.1, b2 * 0.1, g * 0.1 + 1.0, b * 0.1)


def params_from_draws(normals: list[jax.Array]) -> Params:
    """:func:`scale_rest` of a compiled draw, on the host; the result on the default device."""
    return jax.device_put(scale_rest(jax.device_get(normals)))


def init_params(
    key: jax.Array,
    vocab_size: int,
    n_embd: int = 10,
    n_hidden: int = 64,
    block_size: int = 3,
    dtype: jnp.dtype = jnp.float32,
) -> Params:
    """Draw parameters with the notebook's scales (biases non-zero on purpose: zeros could mask
    a wrong backward). 4137 parameters at n_embd 10, n_hidden 64, block_size 3, vocab 27.

    Each group is ``jax.random.normal`` of its own key from ``jax.random.split(key, 7)`` times
    its scale, bit for bit; eagerly the draws are one compiled program (:func:`draw_scaled`)."""
    shapes = param_shapes(vocab_size, n_embd, n_hidden, block_size)
    if isinstance(key, jax.core.Tracer):  # inside a caller's jit or vmap: all traced
        return scale_rest(draw_scaled(key, shapes, dtype, *w1_scale(shapes)))
    return params_from_draws(_normals(key, *w1_scale(shapes), shapes, jnp.dtype(dtype)))


def block_size_of(params: Params) -> int:
    """The context length a model was built for: W1 has block_size x n_embd rows."""
    return params.W1.shape[0] // params.C.shape[1]


def n_params(params: Params) -> int:
    """Total number of scalars in ``params``."""
    return sum(p.size for p in params)


def _identity(name: str, value: jax.Array) -> jax.Array:
    return value


Tap = Callable[[str, jax.Array], jax.Array]


def forward_chunked(
    params: Params, xb: jax.Array, yb: jax.Array, tap: Tap = _identity
) -> Intermediates:
    """The notebook's forward, one line per notebook line.

    ``tap(name, value)`` sees each intermediate and returns the value to carry on with; the
    reference gradients use it to add a zero "probe" whose gradient is dX (see backward.py).
    """
    C, W1, b1, W2, b2, bngain, bnbias = params
    n = xb.shape[0]
    emb = tap("emb", C[xb])  # (n, block_size, n_embd)
    embcat = tap("embcat", emb.reshape(emb.shape[0], -1))  # (n, block_size * n_embd)
    # linear layer 1
    hprebn = tap("hprebn", embcat @ W1 + b1)
    # batchnorm layer
    bnmeani = tap("bnmeani", 1 / n * hprebn.sum(0, keepdims=True))
    bndiff = tap("bndiff", hprebn - bnmeani)
    bndiff2 = tap("bndiff2", bndiff**2)
    bnvar = tap("bnvar", 1 / (n - 1) * bndiff2.sum(0, keepdims=True))  # Bessel: n - 1
    bnvar_inv = tap("bnvar_inv", (bnvar + BN_EPS) ** -0.5)
    bnraw = tap("bnraw", bndiff * bnvar_inv)
    hpreact = tap("hpreact", bngain * bnraw + bnbias)
    # non-linearity
    h = tap("h", jnp.tanh(hpreact))
    # linear layer 2
    logits = tap("logits", h @ W2 + b2)
    # cross entropy loss (same as the fused loss below)
    logit_maxes = tap("logit_maxes", logits.max(1, keepdims=True))
    norm_logits = tap("norm_logits", logits - logit_maxes)  # subtract max for stability
    counts = tap("counts", jnp.exp(norm_logits))
    counts_sum = tap("counts_sum", counts.sum(1, keepdims=True))
    counts_sum_inv = tap("counts_sum_inv", counts_sum**-1)
    probs = tap("probs", counts * counts_sum_inv)
    logprobs = tap("logprobs", jnp.log(probs))
    loss = -logprobs[jnp.arange(n), yb].mean()
    # fmt: off
    return Intermediates(emb, embcat, hprebn, bnmeani, bndiff, bndiff2, bnvar, bnvar_inv, bnraw,
                         hpreact, h, logits, logit_maxes, norm_logits, counts, counts_sum,
                         counts_sum_inv, probs, logprobs, loss)
    # fmt: on


def batch_stats(hprebn: jax.Array) -> BNStats:
    """Mean and Bessel-corrected variance over the batch axis."""
    return BNStats(hprebn.mean(0, keepdims=True), hprebn.var(0, ddof=1, keepdims=True))


def batchnorm_fused(
    hprebn: jax.Array, bngain: jax.Array, bnbias: jax.Array, stats: BNStats | None = None
) -> jax.Array:
    """BatchNorm "in one line" (Exercise 3's forward); ``stats`` None means batch statistics."""
    mean, var = batch_stats(hprebn) if stats is None else stats
    return bngain * (hprebn - mean) * jax.lax.rsqrt(var + BN_EPS) + bnbias


def hprebn_of(params: Params, x: jax.Array) -> jax.Array:
    """The pre-BatchNorm activations for contexts ``x`` (n, block_size)."""
    emb = params.C[x]
    return emb.reshape(emb.shape[0], -1) @ params.W1 + params.b1


def logits_fused(params: Params, x: jax.Array, stats: BNStats | None = None) -> jax.Array:
    """Logits for contexts ``x``; BatchNorm uses ``stats`` when given, else the batch's own."""
    hpreact = batchnorm_fused(hprebn_of(params, x), params.bngain, params.bnbias, stats)
    return jnp.tanh(hpreact) @ params.W2 + params.b2


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean negative log-likelihood of targets ``y`` (Exercise 2's forward, in one call)."""
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()


def loss_fused(
    params: Params, xb: jax.Array, yb: jax.Array, stats: BNStats | None = None
) -> jax.Array:
    """The training/evaluation loss in library calls; equals ``forward_chunked(...).loss``."""
    return cross_entropy(logits_fused(params, xb, stats), yb)
