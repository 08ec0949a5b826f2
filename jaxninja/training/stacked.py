"""Many runs in one compiled program: K seeds and sweep points trained side by side.

The K runs' parameters are stacked on a leading *runs* axis, which is split over the devices of a
one-axis mesh (``"runs"``: on CPU, host devices made with ``XLA_FLAGS=
--xla_force_host_platform_device_count=N`` before jax starts; the CLI does this). On each device
``jax.lax.map`` walks that device's runs; each iteration is *the single run's own chunk*
(:func:`jaxninja.lecture.step.sgd_step` in a ``lax.scan`` over pre-drawn batches), so every run is
bit for bit the run trained alone, at every K. ``group > 1`` vectorises ``group`` runs per iteration
(``vmap``): that is what a GPU needs (one run is launch-bound there), but batched matmuls may sum
in another order, so those runs agree with the run alone only to rounding (README states the
bound measured). The runs are independent: no collective appears in the program.

    from jaxninja.training import stacked, plan
    runs = plan.plan_runs(TrainConfig(steps=20_000), seeds=8)
    result = stacked.train_runs(runs, dataset)           # 8 runs, one program
    result.states[3].params                                # equals train(runs[3]) bit for bit
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxninja.background import Later
from jaxninja.checks import float_dtype
from jaxninja.config import TrainConfig
from jaxninja.data import Dataset
from jaxninja.errors import ConfigError, JaxninjaError, Name, RunNonFinite
from jaxninja.lecture.step import chunk_indices
from jaxninja.models.trainable import Step, Trainable, trainable_of
from jaxninja.training.chunk import scan_steps
from jaxninja.training.loop import (
    CHUNK_STEPS,
    Chunked,
    ChunkReport,
    LoopHooks,
    TrainState,
    check_gradients,
    check_loop_settings,
    run_chunks,
    start_state,
)

RUNS_AXIS = "runs"
GROUP = Name("group", "--group")  # runs vmapped together on one device
SHARED_FIELDS = ("n_embd", "n_hidden", "block_size", "batch_size", "dtype", "steps")
"""What every run of one program shares (shapes, dtype, length); the rest may differ."""
INT32_MAX = 2**31 - 1  # steps are int32 in the program: a later decay step never comes


class Layout(NamedTuple):
    """How the runs are laid out: the mesh their axis is split over, the runs vectorised per
    ``lax.map`` iteration on a device, and K rounded up to a multiple of the mesh size."""

    mesh: Mesh
    group: int  # 1: one run at a time (bit-identical to the run alone); > 1: vmap of `group`
    padded: int  # runs in the program (the extra ones repeat run 0 and are dropped)

    @property
    def devices(self) -> int:
        return self.mesh.size

    def describe(self, runs: int) -> str:
        where = f"{self.devices} {self.mesh.devices.flat[0].platform} device(s)"
        how = "one run at a time" if self.group == 1 else f"{self.group} runs vmapped at a time"
        pad = f", {self.padded - runs} padding run(s)" if self.padded > runs else ""
        return f"{runs} runs over {where}, {how}{pad}"


class RunsResult(NamedTuple):
    """The end of :func:`train_runs`: each run's state, and how fast the program went."""

    states: list[TrainState]
    interrupted: bool
    steps_per_s: float | None  # program steps/s (each advances every run) over warm chunks
    compile_s: float
    wall_s: float
    layout: Layout

    @property
    def run_steps_per_s(self) -> float | None:
        return None if self.steps_per_s is None else self.steps_per_s * len(self.states)


def make_layout(
    runs: int, platform: str | None = None, devices: int | None = None, group: int | None = None
) -> Layout:
    """The runs' axis over ``devices`` devices of ``platform`` (default: as many as there are
    runs, up to all jax sees) with ``group`` runs vectorised per step of the device's loop
    (default 1 on CPU, where vmap gains little per core and one run at a time is bit-identical;
    all of a device's runs on an accelerator, where one run cannot fill the chip)."""
    available = jax.devices(platform)
    if devices is None:
        devices = min(runs, len(available))
    if not 1 <= devices <= len(available):
        raise ConfigError(
            f"{devices} devices asked for the runs, but jax sees {len(available)} "
            f"{available[0].platform} device(s)"
        )
    padded = -(-runs // devices) * devices
    per_device = padded // devices
    if group is None:
        group = 1 if available[0].platform == "cpu" else per_device
    if not isinstance(group, int) or group < 1:
        raise ConfigError(GROUP, f" must be an integer >= 1, got {group!r}")
    mesh = Mesh(np.array(available[:devices]), (RUNS_AXIS,))
    return Layout(mesh, min(group, per_device), padded)


# ------------------------------------------------------------------------- the compiled chunk


def _one_run_chunk(
    step_fn, params, stats, key, lr0, lr1, decay_step, step0, x, y, n_steps, batch_size
):
    """One run's chunk: :func:`jaxninja.training.chunk.train_chunk` with its schedule as arrays
    (a sweep's runs differ in it); the same ops, the same batches, the same learning rates."""
    steps = step0 + jnp.arange(n_steps)
    ix = chunk_indices(key, steps, batch_size, x.shape[0])
    lrs = jnp.where(steps < decay_step, lr0, lr1)
    return scan_steps(step_fn, params, stats, (x[ix], y[ix], lrs))


@partial(jax.jit, static_argnames=("step_fn", "n_steps", "batch_size", "mesh", "group"))
def runs_chunk(
    step_fn: Step,
    params: Any,
    stats: Any,
    keys: jax.Array,
    lr0: jax.Array,
    lr1: jax.Array,
    decay_step: jax.Array,
    step0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    n_steps: int,
    batch_size: int,
    mesh: Mesh,
    group: int,
) -> tuple[tuple[Any, Any], jax.Array]:
    """Steps ``step0 .. step0 + n_steps - 1`` of every run with the model's ``step_fn``:
    ``params`` and ``stats`` (runs, ...) stacked, ``keys`` (runs,), the schedules (runs,);
    returns the new (parameters, statistics) and (runs, n_steps) losses. Each device maps over
    its share of the runs, ``group`` at a time."""

    def local(params, stats, keys, lr0, lr1, decay_step, step0, x, y):
        def one(run):
            return _one_run_chunk(step_fn, *run, step0, x, y, n_steps, batch_size)

        batch = group if group > 1 else None
        return jax.lax.map(one, (params, stats, keys, lr0, lr1, decay_step), batch_size=batch)

    runs, whole = P(RUNS_AXIS), P()
    mapped = jax.shard_map(
        local, mesh=mesh, in_specs=(runs,) * 6 + (whole,) * 3, out_specs=((runs, runs), runs)
    )
    return mapped(params, stats, keys, lr0, lr1, decay_step, step0, x, y)


# ------------------------------------------------------------------------------- the loop


def check_compatible(configs: Sequence[TrainConfig]) -> None:
    """The runs of one program share shapes, dtype and length (:data:`SHARED_FIELDS`)."""
    if not configs:
        raise ConfigError("no runs to train")
    for field in SHARED_FIELDS:
        values = {getattr(c, field) for c in configs}
        if len(values) > 1:
            raise ConfigError(f"runs in one program must share {field}, got {sorted(values)}")


def _schedules(configs: Sequence[TrainConfig], padded: int, dtype) -> tuple[np.ndarray, ...]:
    """(lr, lr x decay, decay step) per run as arrays, rounded as the single run rounds them:
    Python's double product, then one rounding to ``dtype``."""
    rows = [(c.lr, c.lr * c.lr_decay, min(c.lr_decay_step, INT32_MAX)) for c in configs]
    rows += [rows[0]] * (padded - len(rows))
    lr0, lr1, decay = zip(*rows, strict=True)
    return np.asarray(lr0, dtype), np.asarray(lr1, dtype), np.asarray(decay, np.int32)


def _stack(trees: Sequence, padded: int):
    trees = list(trees) + [trees[0]] * (padded - len(trees))
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def place_runs(
    configs: Sequence[TrainConfig],
    states: Sequence[TrainState],
    layout: Layout,
    data: tuple[np.ndarray, np.ndarray],
) -> tuple[Any, Any, jax.Array, tuple[jax.Array, ...], tuple[jax.Array, jax.Array]]:
    """The program's inputs on the layout's devices: parameters, statistics and keys stacked
    (padded) and split over the runs' axis, the schedules likewise, the training split ``data``
    on every device: the arguments :func:`runs_chunk` takes before ``step0``."""
    spread, whole = NamedSharding(layout.mesh, P(RUNS_AXIS)), NamedSharding(layout.mesh, P())
    dtype = float_dtype(configs[0].dtype)
    params = jax.device_put(_stack([s.params for s in states], layout.padded), spread)
    stats = jax.device_put(_stack([s.stats for s in states], layout.padded), spread)
    keys = jax.device_put(_stack([s.batch_key for s in states], layout.padded), spread)
    schedule = jax.device_put(_schedules(configs, layout.padded, dtype), spread)
    return params, stats, keys, schedule, jax.device_put(tuple(data), whole)


def train_runs(
    configs: Sequence[TrainConfig],
    dataset: Dataset,
    *,
    states: Sequence[TrainState] | None = None,
    chunk_steps: int = CHUNK_STEPS,
    check_every: int = 0,
    checkpoint_every: int = 0,
    save: Callable[[list[TrainState]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    layout: Layout | None = None,
    model: Trainable | None = None,
    val_every: int = 0,
    val_loss: Callable[[TrainState], float] | None = None,
) -> RunsResult:
    """Train every run of ``configs`` (from ``states``, default fresh) to their shared
    ``steps``, in one program per chunk, with :func:`jaxninja.training.loop.train_loop`'s contract:
    chunks end at multiples of ``chunk_steps``, ``check_every``, ``checkpoint_every`` and
    ``val_every``; ``save(states)`` at each checkpoint and when ``should_stop()`` turns true
    (asked after every chunk); a non-finite loss raises :class:`RunNonFinite` naming the run and
    step. ``model``: the model every run trains (default: the lecture's). ``val_loss(state)`` is
    called for each run at every multiple of ``val_every`` and at the end, on a second thread
    beside the next chunks; its values make each run's ``val_curve``, as one run's do."""
    model = trainable_of(model)
    check_loop_settings(chunk_steps, check_every, checkpoint_every, val_every)
    check_compatible(configs)
    config = configs[0]
    dtype = float_dtype(config.dtype)
    k = len(configs)
    if states is None:
        states = [start_state(c, dataset.vocab.size, model) for c in configs]
    if len(states) != k or len({s.step for s in states}) != 1:
        raise ConfigError("every run must start from the same step")
    layout = layout or make_layout(k)
    mesh = layout.mesh
    params, stats, keys, schedule, (x, y) = place_runs(configs, states, layout, dataset.train[:2])
    step = states[0].step
    losses = np.full((k, config.steps), np.nan, dtype)  # train_loop's history is in the dtype too
    for i, s in enumerate(states):
        losses[i, :step] = s.losses[:step]
    curves = RunCurves(states, val_loss)
    t_start = time.perf_counter()

    def current() -> list[TrainState]:
        host, host_stats = jax.device_get((params, stats))
        measured = curves.measured()
        return [
            TrainState(
                jax.tree.map(lambda a, i=i: a[i], host), step, s.batch_key, losses[i, :step].copy(),
                jax.tree.map(lambda a, i=i: a[i], host_stats), measured[i],
            )
            for i, s in enumerate(states)
        ]  # fmt: skip

    def chunk(step: int, n: int) -> tuple[Any, np.ndarray]:
        new, chunk = runs_chunk(
            model.step, params, stats, keys, *schedule, np.int32(step), x, y, n,
            config.batch_size, mesh, layout.group,
        )  # fmt: skip
        return new, np.asarray(chunk)[:k]

    def keep(new: tuple[Any, Any], chunk: np.ndarray, end: int) -> None:
        nonlocal params, stats, step
        losses[:, step:end] = chunk
        (params, stats), step = new, end

    def non_finite(chunk: np.ndarray, first: int, last_saved: int | None) -> Exception:
        bad = ~np.isfinite(chunk)
        i = int(bad.any(axis=0).argmax())  # the first bad step, then the first run there
        run = int(bad[:, i].argmax())
        return RunNonFinite(run, first + i, float(chunk[run, i]), last_saved)

    def check(step: int) -> None:
        _check_runs(params, stats, states, step, dataset, config.batch_size, model)

    hooks = LoopHooks(chunk_steps, check_every, checkpoint_every, save, should_stop, on_chunk)
    hooks = hooks._replace(measure_every=val_every, measure=curves.measure if val_loss else None)
    try:
        clock = run_chunks(
            Chunked(chunk, keep, non_finite, check, current), step, config.steps, hooks
        )
    finally:
        curves.close()
    wall_s = time.perf_counter() - t_start
    interrupted = step < config.steps
    return RunsResult(current(), interrupted, clock.steps_per_s, clock.compile_s, wall_s, layout)


class RunCurves:
    """Each run's validation points: measured on one second thread (:class:`Later`), run after
    run, while the next chunks train; a point that failed is a gap (NaN), never a lost run."""

    def __init__(self, states: Sequence[TrainState], val_loss: Callable | None) -> None:
        self.val_loss = val_loss
        self.points = [
            [] if s.val_curve is None else [tuple(p) for p in s.val_curve] for s in states
        ]
        self.later = Later("jaxninja-val") if val_loss else None

    def measure(self, states: Sequence[TrainState]) -> None:
        """Hand every run's point at this step to the second thread."""
        for i, state in enumerate(states):
            self.later.submit((i, state.step), partial(self.val_loss, state))

    def measured(self) -> list[np.ndarray | None]:
        """Every run's points so far (waited for; each well under 1 s), None without a curve."""
        if self.later is None:
            return [None] * len(self.points)
        for (i, at), value in self.later.results():
            self.points[i].append((at, np.nan if isinstance(value, Exception) else float(value)))
        return [np.asarray(p, np.float64).reshape(-1, 2) for p in self.points]

    def close(self) -> None:
        if self.later is not None:
            self.later.close()


def _check_runs(
    params, stats, states, step: int, dataset: Dataset, batch_size: int, model: Trainable
) -> None:
    """``--check-every`` for every run: its manual gradients against ``jax.grad``."""
    host, host_stats = jax.device_get((params, stats))
    x, y = jnp.asarray(dataset.train.x), jnp.asarray(dataset.train.y)
    for i, s in enumerate(states):
        run_params = jax.tree.map(lambda a, i=i: jnp.asarray(a[i]), host)
        run_stats = jax.tree.map(lambda a, i=i: jnp.asarray(a[i]), host_stats)
        try:
            check_gradients(run_params, s.batch_key, step, x, y, batch_size, model, run_stats)
        except Exception as err:
            if type(err).__init__ is JaxninjaError.__init__:  # its settings keep both spellings
                raise type(err)(f"run {i}: ", err) from None
            raise type(err)(f"run {i}: {err}") from None
