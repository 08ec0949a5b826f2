"""Common rule instances beyond the shipped models', so that a model of your own finds its rules
already proved: small synthetic forwards (one per rank) that use each primitive in its usual
forms, run through the real rules (so each statement is exactly the one the generator asks for).

Only traced, never run: the values do not matter (``log`` of a negative is fine here).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxninja.models.protocol import Model

SHAPES = {1: (5,), 2: (5, 6), 3: (4, 5, 6)}


def _elementwise(x, w):
    """Unary and binary elementwise primitives, broadcasting each single axis, constants of
    both signs."""
    out = [jnp.exp(x), jnp.log(x), jnp.tanh(x), jax.nn.sigmoid(x), lax.erf(x), lax.erfc(x)]
    out += [jnp.sqrt(x), lax.rsqrt(x), lax.square(x), -x, jnp.abs(x) * 0 + x]
    out += [x**2, x**3, x**-1, x**-2, x**0.5, x**-0.5, x**-1.5]
    out += [x + w, x - w, x * w, x / w, jnp.maximum(x, w), jnp.minimum(x, w)]
    out += [x + 2.0, x - 2.0, 2.0 - x, 2.0 * x, -2.0 * x, x / 2.0, 2.0 / x, x * -1.0]
    out += [jax.nn.relu(x), jnp.maximum(x, 0.0), jnp.minimum(x, 0.0), jnp.where(x > 0, x, w)]
    out += [jnp.where(x > 0, x, 0.0), jnp.where(x > 0, 0.01 * x, x)]
    for k in range(x.ndim):
        shape = tuple(1 if i == k else s for i, s in enumerate(x.shape))
        v = w.sum(k, keepdims=True).reshape(shape)
        out += [x + v, v + x, x - v, v - x, x * v, v * x, x / v, v / x]
        out += [jnp.maximum(x, v), jnp.minimum(x, v)]
    lead = w.reshape(-1, x.shape[-1]).sum(0)  # a row of x's last axis, broadcast over the rest
    out += [x + lead, x * lead, x - lead, x / lead]
    return out


def _reductions(x):
    out = [x.sum(), x.mean(), jax.nn.log_softmax(x, axis=-1), jax.nn.softmax(x, axis=-1)]
    for n in range(1, x.ndim + 1):
        for axes in itertools.combinations(range(x.ndim), n):
            out += [x.sum(axes), x.sum(axes, keepdims=True), x.mean(axes, keepdims=True)]
            if n < x.ndim:  # a max to a scalar is a loss to the engine: not statable
                out += [x.max(axes), x.max(axes, keepdims=True)]
    if x.ndim >= 2:
        out += [x.T, jnp.swapaxes(x, 0, 1), x.reshape(-1), x.reshape(x.shape[0], -1)]
    if x.ndim == 3:
        out += [x.transpose(0, 2, 1), x.transpose(1, 0, 2), x.transpose(2, 0, 1)]
    return out


def _slices(x):
    """Dropping the first, the last, or both ends of one axis, and joining two or three arrays
    along one (the language's shifted reads: a neighbour's value, a padded edge)."""
    out = []
    for k in range(x.ndim):
        n = x.shape[k]
        out += [lax.slice_in_dim(x, 1, n, axis=k), lax.slice_in_dim(x, 0, n - 1, axis=k)]
        out += [lax.slice_in_dim(x, 1, n - 1, axis=k), jnp.concatenate([x, x], axis=k)]
    out += [jnp.concatenate([x, x, x], axis=x.ndim - 1)]
    return out


def _matmuls(x, rank):
    out = []
    if rank >= 2:
        w = jnp.ones((x.shape[-1], 3), x.dtype)
        out += [x @ w, x @ w[:, 0]]
    if rank == 3:
        out += [x @ x.transpose(0, 2, 1), x.transpose(0, 2, 1) @ x]
        out += [jnp.einsum("btc,bsc->bts", x, x)]
    if rank == 2:
        out += [x.T @ x, x @ x.T]
    return out


def _gathers(C, idx):
    out = [C[idx[:, 0]], C[idx], C[idx].reshape(idx.shape[0], -1)]
    logits = C[idx[:, 0]] @ C.T
    out += [jnp.take_along_axis(logits, idx[:, :1], axis=1)]
    out += [logits[jnp.arange(idx.shape[0]), idx[:, 0]]]
    return out


def _model(rank: int) -> Model:
    shape = SHAPES[rank]

    def init(key):
        return {"x": np.ones(shape, np.float32), "w": np.ones(shape, np.float32),
                "C": np.ones((7, 3), np.float32)}  # fmt: skip

    def batch(key):
        return np.zeros((4, 2), np.int32)

    def forward(params, idx, tap):
        x, w, C = params["x"], params["w"], params["C"]
        parts = _elementwise(x, w) + _reductions(x) + _slices(x) + _matmuls(x, rank)
        parts += _gathers(C, idx)
        return sum(jnp.sum(p) for p in parts)

    def backward(params, batch, acts):
        raise NotImplementedError

    return Model(f"catalogue rank {rank}", init, batch, forward, backward)


def models() -> list[Model]:
    """One synthetic model per rank 1, 2, 3."""
    return [_model(rank) for rank in SHAPES]
