"""The compiled hot loop: many SGD steps per dispatch with ``jax.lax.scan``, manual backward only.

Step ``s`` draws its minibatch from ``jax.random.fold_in(key, s)``, so the batches depend only on
the seed and the step number: a run resumed at any step sees the same batches as one that never
stopped.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxninja.fused import loss_and_grads
from jaxninja.model import Params


class Schedule(NamedTuple):
    """Learning rate ``lr``, multiplied by ``decay`` from step ``decay_step`` on (lecture: 0.1,
    x0.1 at 100,000)."""

    lr: float = 0.1
    decay_step: int = 100_000
    decay: float = 0.1


def learning_rate(schedule: Schedule, step: jax.Array) -> jax.Array:
    """The learning rate at ``step`` (0-based)."""
    return jnp.where(step < schedule.decay_step, schedule.lr, schedule.lr * schedule.decay)


def batch_indices(key: jax.Array, step: jax.Array, batch_size: int, n_train: int) -> jax.Array:
    """Step ``step``'s minibatch: ``batch_size`` indices uniform over the training split."""
    return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n_train)


@partial(jax.jit, static_argnames=("n_steps", "batch_size", "schedule"))
def train_chunk(params: Params, key: jax.Array, step0: jax.Array, x: jax.Array, y: jax.Array,
                n_steps: int, batch_size: int, schedule: Schedule) -> tuple[Params, jax.Array]:
    """Run steps ``step0 .. step0 + n_steps - 1``; return the new parameters and each step's loss.

    ``x``/``y`` is the whole training split on the device; shapes are constant so this compiles
    once per (n_steps, batch_size, schedule).
    """

    def one_step(p: Params, step: jax.Array) -> tuple[Params, jax.Array]:
        ix = batch_indices(key, step, batch_size, x.shape[0])
        loss, grads = loss_and_grads(p, x[ix], y[ix])
        lr = learning_rate(schedule, step).astype(p.W1.dtype)
        return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

    steps = step0 + jnp.arange(n_steps)
    return jax.lax.scan(one_step, params, steps)
