"""The compiled hot loop: many SGD steps per dispatch with ``jax.lax.scan``, manual backward only.

Step ``s`` draws its minibatch from ``jax.random.fold_in(key, s)``, so the batches depend only on
the seed and the step number: a run resumed at any step sees the same batches as one that never
stopped.

Why the chunk's batches are drawn before the scan: the step itself is ~40 tiny XLA ops (six
32x30x200-sized matmuls and their elementwise neighbours) and costs tens of microseconds, so
drawing 32 Threefry random numbers and gathering 32 rows *inside* every iteration nearly doubled
it. Drawing all ``n_steps x batch_size`` indices in one vectorised call and gathering the rows
once gives bit-identical batches at about half the cost per step (see
``benchmarks/train_speed.py``).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import Params


class Schedule(NamedTuple):
    """Learning rate ``lr``, multiplied by ``decay`` from step ``decay_step`` on (lecture: 0.1,
    x0.1 at 100,000)."""

    lr: float = 0.1
    decay_step: int = 100_000
    decay: float = 0.1


def learning_rate(schedule: Schedule, step: jax.Array) -> jax.Array:
    """The learning rate at ``step`` (0-based; works elementwise on an array of steps)."""
    return jnp.where(step < schedule.decay_step, schedule.lr, schedule.lr * schedule.decay)


def batch_indices(key: jax.Array, step: jax.Array, batch_size: int, n_train: int) -> jax.Array:
    """Step ``step``'s minibatch: ``batch_size`` indices uniform over the training split."""
    return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n_train)


def chunk_indices(key: jax.Array, steps: jax.Array, batch_size: int, n_train: int) -> jax.Array:
    """:func:`batch_indices` for every step in ``steps`` at once: (len(steps), batch_size).

    Row ``i`` equals ``batch_indices(key, steps[i], ...)`` bit for bit (vmap of the same
    counter-based draw), so chunking never changes a step's batch.
    """
    return jax.vmap(batch_indices, in_axes=(None, 0, None, None))(key, steps, batch_size, n_train)


def sgd_step(
    params: Params, batch: tuple[jax.Array, jax.Array, jax.Array]
) -> tuple[Params, jax.Array]:
    """One SGD step on a minibatch ``(xb, yb, lr)``: manual gradients, then ``p -= lr * grad``."""
    xb, yb, lr = batch
    loss, grads = loss_and_grads(params, xb, yb)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss


@partial(jax.jit, static_argnames=("n_steps", "batch_size", "schedule", "batch_sharding"))
def train_chunk(
    params: Params,
    key: jax.Array,
    step0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    n_steps: int,
    batch_size: int,
    schedule: Schedule,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> tuple[Params, jax.Array]:
    """Run steps ``step0 .. step0 + n_steps - 1``; return the new parameters and each step's loss.

    The lecture's chunk is the chunk every model trains in
    (:func:`jaxninja.training.chunk.train_chunk`, one compiled ``lax.scan`` with the chunk's
    minibatches and learning rates drawn up front) run with the lecture's step, the fused
    manual backward (:func:`jaxninja.models.lecture.lecture_trainable`); it carries no
    statistics. A compiled program of its own (``train_chunk.lower`` shows it), the generic
    chunk inlined. Imported here, not at the top: the training chunk imports this module's
    schedule and batch draws.
    """
    from jaxninja.models.lecture import lecture_trainable
    from jaxninja.training.chunk import train_chunk as model_chunk

    step = lecture_trainable().step
    args = (key, step0, x, y, n_steps, batch_size, schedule, batch_sharding)
    params, _, losses = model_chunk(step, params, None, *args)
    return params, losses
