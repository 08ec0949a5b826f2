"""WRONG ON PURPOSE: unsynchronised BatchNorm, as naive data parallelism does it (tests only).

Each device runs the one-device backward on its shard alone, so BatchNorm normalises with the
shard's mean and variance, and the gradients are averaged afterwards: a different model from the
global-batch one. ``tests/test_parallel.py`` shows that the package's comparisons catch it.
"""

from __future__ import annotations

from functools import cache, partial

import jax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxninja.devices.parallel import BATCH_AXIS, replicate, shard_batch
from jaxninja.lecture import step
from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import Params


def loss_and_grads_per_shard_bn(
    mesh: Mesh, params: Params, xb: jax.Array, yb: jax.Array
) -> tuple[jax.Array, Params]:
    """WRONG ON PURPOSE (tests only): unsynchronised BatchNorm, as naive data parallelism does it.

    Each device runs the one-device backward on its shard alone, so BatchNorm normalises with the
    shard's mean and variance (n/N examples, Bessel's n/N - 1), and the loss and gradients are
    averaged over devices afterwards. That is a different model from the global-batch one.
    """
    return _per_shard_bn(mesh)(replicate(mesh, params), *shard_batch(mesh, xb, yb))


@cache  # one jitted program per mesh (an eager shard_map would run op by op)
def _per_shard_bn(mesh: Mesh):
    def local(params: Params, xb: jax.Array, yb: jax.Array) -> tuple[jax.Array, Params]:
        loss, grads = loss_and_grads(params, xb, yb)
        return jax.lax.pmean((loss, grads), BATCH_AXIS)

    specs = {"in_specs": (P(), P(BATCH_AXIS), P(BATCH_AXIS)), "out_specs": (P(), P())}
    return jax.jit(jax.shard_map(local, mesh=mesh, **specs))


@partial(jax.jit, static_argnames=("mesh", "n_steps", "batch_size", "schedule"))
def train_chunk_per_shard_bn(
    params: Params,
    key: jax.Array,
    step0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    mesh: Mesh,
    n_steps: int,
    batch_size: int,
    schedule: step.Schedule,
) -> tuple[Params, jax.Array]:
    """WRONG ON PURPOSE (tests only): :func:`jaxninja.lecture.step.train_chunk`'s batches and
    schedule, stepped with :func:`loss_and_grads_per_shard_bn`'s unsynchronised BatchNorm."""
    steps = step0 + jax.numpy.arange(n_steps)
    ix = step.chunk_indices(key, steps, batch_size, x.shape[0])
    lrs = step.learning_rate(schedule, steps).astype(params.W1.dtype)
    grads_of = _per_shard_bn(mesh)

    def sgd(p: Params, batch: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[Params, jax.Array]:
        xb, yb, lr = batch
        loss, grads = grads_of(p, xb, yb)
        return jax.tree.map(lambda a, g: a - lr * g, p, grads), loss

    return jax.lax.scan(sgd, params, (x[ix], y[ix], lrs))
