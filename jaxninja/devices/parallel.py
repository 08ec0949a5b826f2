"""Data parallelism over several devices, with synchronised BatchNorm, from shardings alone.

The batch is split over a one-axis :class:`jax.sharding.Mesh` (axis ``"batch"``), the parameters
are replicated, and the step is the *same* jitted code as on one device:
:func:`jaxninja.lecture.fused.loss_and_grads` and :func:`jaxninja.lecture.step.train_chunk`.
Because that code is
written over the global batch, every batch sum in it -- BatchNorm's mean and variance,
``dbnbias = Σ dhpreact``, ``dbngain = Σ dhpreact·bnraw``, ``dW = x.T @ dout``, the loss -- becomes a
cross-device reduction that XLA's SPMD partitioner inserts (``all-reduce`` in the compiled HLO,
see :func:`count_collectives`). BatchNorm therefore uses the statistics of the global batch
(synchronised BatchNorm by construction) and the maths is the one-device maths; only the order of
the additions changes. No ``shard_map``, no hand-written ``psum``, no copy of the kernels.

The classic mistake, each device normalising with its own shard's statistics, lives in the
tests (``tests/per_shard_bn.py``), which show that these comparisons catch it.

From Python (on CPU, simulate devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
set before jax starts)::

    mesh = make_mesh(4)
    loss, grads = loss_and_grads_sharded(mesh, params, xb, yb)        # grads replicated
    params, losses = train_chunk_sharded(mesh, params, key, 0, x, y, 1000, 512, Schedule())

Several processes (one per host, or several on one machine):
:func:`jaxninja.devices.distributed.initialize`
in every process first; ``jax.devices()`` then lists every process's devices and :func:`make_mesh`
spans all of them. Every process holds the same host data (the same word list and seed), so
:func:`replicate` and :func:`shard_batch` build the global arrays from each process's own copy,
nothing is sent at placement, and each device gathers its own rows of each batch inside the
compiled step. Replicated results (parameters, losses) are read in every process with
``np.asarray``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxninja import numerics
from jaxninja.checks import N_DEVICES, Label, check_divisible, check_int
from jaxninja.errors import ConfigError
from jaxninja.gradcheck.compare import Row, compare
from jaxninja.lecture import step
from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import Params, loss_fused

BATCH_AXIS = "batch"


# ----------------------------------------------------------------------------- mesh and data


def make_mesh(n_devices: int, platform: str | None = None, flag: Label = N_DEVICES) -> Mesh:
    """A mesh of the first ``n_devices`` devices of ``platform`` (default: JAX's default
    platform), with one axis, ``"batch"``. With several processes it must span every device of
    every process (a process without a device in the mesh would have no part in the step).
    ``flag`` names the setting in errors (``devices=`` from Python, ``--devices`` from the CLI)."""
    check_int(flag, n_devices, 1, "data parallelism needs at least one device")
    devices = jax.devices(platform)
    if jax.process_count() > 1 and n_devices != len(devices):
        raise ConfigError(
            flag,
            f" {n_devices}: with {jax.process_count()} processes the batch is split over "
            f"all {len(devices)} devices of all processes; drop ",
            flag,
            f" or give {len(devices)}",
        )
    if n_devices > len(devices):
        platform = devices[0].platform
        raise ConfigError(
            flag,
            f" {n_devices}: JAX sees only {len(devices)} {platform} device(s); on CPU, "
            f"simulate more with XLA_FLAGS=--xla_force_host_platform_device_count={n_devices} "
            "set before jax starts",
        )
    return Mesh(np.array(devices[:n_devices]), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the first axis (the examples) over the mesh."""
    return NamedSharding(mesh, P(BATCH_AXIS))


def chunk_sharding(mesh: Mesh) -> NamedSharding:
    """A chunk's minibatches (n_steps, batch_size, ...): each step's examples split over devices."""
    return NamedSharding(mesh, P(None, BATCH_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh (parameters, the training split)."""
    return NamedSharding(mesh, P())


def place(tree, sharding: NamedSharding):
    """``tree`` laid out by ``sharding``. Within one process this is ``jax.device_put``. Across
    processes every process passes the same values: arrays go through host memory (a process
    can place only onto its own devices) and a PRNG key through its raw data."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)))
        return jax.device_put(np.asarray(leaf), sharding)

    return jax.tree.map(put, tree)


def replicate(mesh: Mesh, tree):
    """``tree`` copied onto every device of the mesh."""
    return place(tree, replicated(mesh))


def shard_batch(mesh: Mesh, xb: jax.Array, yb: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A minibatch split over the mesh: device i holds examples i·n/N .. (i+1)·n/N - 1."""
    check_divisible(len(yb), mesh.size)
    return place((xb, yb), batch_sharding(mesh))


# ----------------------------------------------------------------------------- gradients

_loss_and_grads = jax.jit(loss_and_grads)  # shardings come from the arguments
_jax_grad = jax.jit(jax.grad(loss_fused))


def loss_and_grads_sharded(
    mesh: Mesh, params: Params, xb: jax.Array, yb: jax.Array
) -> tuple[jax.Array, Params]:
    """:func:`jaxninja.lecture.fused.loss_and_grads` with the batch split over ``mesh``."""
    return _loss_and_grads(replicate(mesh, params), *shard_batch(mesh, xb, yb))


def loss_and_grads_one_device(
    params: Params, xb: jax.Array, yb: jax.Array, device: jax.Device | None = None
) -> tuple[jax.Array, Params]:
    """The reference: the same jitted backward with everything on ``device`` (default: this
    process's first device)."""
    return _loss_and_grads(*jax.device_put((params, xb, yb), device or jax.local_devices()[0]))


def jax_grad_sharded(mesh: Mesh, params: Params, xb: jax.Array, yb: jax.Array) -> Params:
    """``jax.grad`` of :func:`jaxninja.lecture.model.loss_fused` with the batch split over
    ``mesh``."""
    return _jax_grad(replicate(mesh, params), *shard_batch(mesh, xb, yb))


def count_collectives(hlo_text: str) -> dict[str, int]:
    """How many all-reduce / all-gather / reduce-scatter / all-to-all ops a compiled HLO holds."""
    ops = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
    return {op: hlo_text.count(f" {op}(") + hlo_text.count(f" {op}-start(") for op in ops}


def sharded_hlo(mesh: Mesh, params: Params, xb: jax.Array, yb: jax.Array) -> str:
    """The compiled HLO of :func:`loss_and_grads_sharded` (from jit's cache once it has run): its
    all-reduces are the synchronisation itself, its shapes show what each device holds."""
    args = (replicate(mesh, params), *shard_batch(mesh, xb, yb))
    return _loss_and_grads.lower(*args).compile().as_text()


def _first_local(mesh: Mesh) -> jax.Device:
    """This process's first device of the mesh (the others' devices are not addressable)."""
    return next(d for d in mesh.devices.flat if d.process_index == jax.process_index())


def gradient_rows(grads: Params, reference: Params, against: str, bound: float) -> list[Row]:
    """One :class:`Row` per parameter group, in eps at the group's own scale; ``b1`` is zero by
    symmetry (BatchNorm cancels it), so it is measured at the largest scale of all groups."""
    ref = [np.asarray(r) for r in reference]
    largest = max(numerics.row_scale(r) for r in ref)
    return [
        compare(
            name, np.asarray(g), r, against, scale=largest if name == "b1" else None, bound=bound
        )
        for name, g, r in zip(Params._fields, grads, ref, strict=True)
    ]


def sharded_rows(mesh: Mesh, params: Params, xb: jax.Array, yb: jax.Array) -> list[Row]:
    """The sharded manual gradients vs the one-device manual gradients (<= 8 eps·scale) and vs
    ``jax.grad`` of the same sharded loss (<= 32 eps·scale): the rows ``check --devices N`` adds.
    """
    _, single = loss_and_grads_one_device(params, xb, yb, _first_local(mesh))
    _, sharded = loss_and_grads_sharded(mesh, params, xb, yb)
    autodiff = jax_grad_sharded(mesh, params, xb, yb)
    n = mesh.size
    return gradient_rows(sharded, single, f"{n}dev vs 1dev", numerics.SHARDED) + gradient_rows(
        sharded, autodiff, f"{n}dev vs jax", numerics.JAX_JIT
    )


# ----------------------------------------------------------------------------- training


def train_chunk_sharded(
    mesh: Mesh,
    params: Params,
    key: jax.Array,
    step0: int,
    x: jax.Array,
    y: jax.Array,
    n_steps: int,
    batch_size: int,
    schedule: step.Schedule,
) -> tuple[Params, jax.Array]:
    """:func:`jaxninja.lecture.step.train_chunk` with each step's batch split over ``mesh``.

    Parameters and the training split are replicated, so every device can gather its own rows;
    the batches are those of the one-device run (same key, same step numbers).
    """
    check_divisible(batch_size, mesh.size)
    params, key, x, y = replicate(mesh, (params, key, x, y))
    args = (params, key, np.int32(step0), x, y)
    sharding = chunk_sharding(mesh)
    return step.train_chunk(*args, n_steps, batch_size, schedule, batch_sharding=sharding)
