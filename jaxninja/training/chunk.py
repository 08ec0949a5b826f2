"""The compiled hot loop for any model: many SGD steps per dispatch in one ``lax.scan``, each
step the model's own manual backward (:attr:`jaxninja.models.trainable.Trainable.step`).

Step ``s`` draws its minibatch from ``jax.random.fold_in(key, s)`` (all of a chunk's batches in
one vectorised draw before the scan, :func:`jaxninja.lecture.step.chunk_indices`), so a run
resumed at any step sees the same batches as one that never stopped. The carry is the
parameters and the model's training statistics (None for a model without: the lecture's), so a
model like part 5's WaveNet keeps its BatchNorm running statistics step by step.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxninja.lecture.step import Schedule, chunk_indices, learning_rate
from jaxninja.models.trainable import Step


def sgd_update(params: Any, grads: Any, lr: jax.Array) -> Any:
    """``p -= lr * grad`` for every parameter."""
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)


@partial(
    jax.jit, static_argnames=("step_fn", "n_steps", "batch_size", "schedule", "batch_sharding")
)
def train_chunk(
    step_fn: Step,
    params: Any,
    stats: Any,
    key: jax.Array,
    step0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    n_steps: int,
    batch_size: int,
    schedule: Schedule,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> tuple[Any, Any, jax.Array]:
    """Run steps ``step0 .. step0 + n_steps - 1`` with ``step_fn``'s gradients; return the new
    parameters, the new statistics and each step's loss.

    ``x``/``y`` is the whole training split on the device; shapes are constant, so this
    compiles once per (model, n_steps, batch_size, schedule, split size)."""
    steps = step0 + jnp.arange(n_steps)
    ix = chunk_indices(key, steps, batch_size, x.shape[0])  # (n_steps, batch_size)
    if batch_sharding is not None:  # split each step's batch over devices (see parallel.py)
        ix = jax.lax.with_sharding_constraint(ix, batch_sharding)
    lrs = learning_rate(schedule, steps).astype(jax.tree.leaves(params)[0].dtype)
    (params, stats), losses = scan_steps(step_fn, params, stats, (x[ix], y[ix], lrs))
    return params, stats, losses


def scan_steps(
    step_fn: Step, params: Any, stats: Any, batches: tuple[jax.Array, jax.Array, jax.Array]
) -> tuple[tuple[Any, Any], jax.Array]:
    """``lax.scan`` of SGD steps over ``batches`` (xs, ys, learning rates), one a step: the
    scan one run (:func:`train_chunk`) and many (:mod:`jaxninja.training.stacked`) both run."""

    def body(carry: tuple[Any, Any], batch: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        params, stats = carry
        xb, yb, lr = batch
        loss, grads, stats = step_fn(params, stats, xb, yb)
        return (sgd_update(params, grads, lr), stats), loss

    return jax.lax.scan(body, (params, stats), batches)
