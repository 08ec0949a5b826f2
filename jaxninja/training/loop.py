"""Exercise 4: train the lecture's MLP with the manual backward, chunk by chunk.

The hot loop is :func:`jaxninja.training.chunk.train_chunk` (many SGD steps per dispatch in a
``lax.scan``); this module drives it chunk by chunk, which gives natural step boundaries for the
progress bar, the non-finite check, ``check_every``, checkpoints and Ctrl-C. From Python::

    import jaxninja

    result = jaxninja.train(jaxninja.TrainConfig(steps=20_000))   # Exercise 4, shorter
    print(result.split_losses)                                    # train / val / test

:func:`train` is the in-memory call; :func:`jaxninja.run_training` runs the same into a folder
(checkpoints, summary, plot), as ``jaxninja train`` does. Everything after the loop
(calibration, split losses, sampling) is :mod:`jaxninja.training.evaluate`.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from jaxninja import checks, numerics
from jaxninja.background import Later
from jaxninja.checks import dtype_scope, float_dtype
from jaxninja.config import TrainConfig
from jaxninja.data import Dataset, load_dataset
from jaxninja.devices import parallel
from jaxninja.errors import NonFiniteLoss, TrainingError
from jaxninja.gradcheck.compare import compare
from jaxninja.gradcheck.taps import param_names
from jaxninja.lecture.step import batch_indices
from jaxninja.models.trainable import Step, Trainable, trainable_of
from jaxninja.training.chunk import train_chunk
from jaxninja.training.evaluate import split_losses

CHUNK_STEPS = 1_000  # steps per dispatch: one compiled scan; the loop checks in between
ROUNDING_RATIO = 2.0**10
"""A ``--check-every`` failure in float32 is rounding when the float64 error on the same batch
is at most this many times the float32 one, each in eps·scale of its dtype. A rounding
difference stays about the same in eps·scale (it scales with eps), though BatchNorm over a
nearly singular batch variance amplifies it differently in each dtype (measured up to 20x at
batch 3, a correct backward); a wrong formula keeps its relative size, 2^29 (5e8) times more
eps·scale in float64. 2^10 sits between, far from both (``gradcheck.explain`` uses 16 for the
check table, where no such amplification is in play)."""


class TrainState(NamedTuple):
    """Where a run stands: parameters after ``step`` steps, the batch key, every loss so far."""

    params: Any  # the model's parameters (the lecture's: Params)
    step: int
    batch_key: jax.Array  # fixed for the run; step s's batch comes from fold_in(batch_key, s)
    losses: np.ndarray  # (step,) the loss of each step done, for the plot
    stats: Any = None  # statistics the model carries through training (None: it has none)
    val_curve: np.ndarray | None = None  # (points, 2): step, validation loss (loss.png)


class ChunkReport(NamedTuple):
    """What the loop reports after each chunk (the CLI feeds it to the progress bar)."""

    step: int  # steps done after this chunk
    n_steps: int  # steps in this chunk
    loss: float  # the chunk's mean loss
    seconds: float  # wall time of the chunk
    compiled: bool  # first chunk of this length in this run: its time may include compiling


class TrainResult(NamedTuple):
    """The end of :func:`train`: the final state, how fast it went and (finished runs) the
    calibrated BatchNorm statistics and the loss of each split."""

    state: TrainState
    interrupted: bool  # True if ``should_stop`` asked to stop before ``config.steps``
    steps_per_s: float | None  # over the chunks not marked ``compiled`` (None if there were none)
    compile_s: float  # wall time of the chunks marked ``compiled``
    wall_s: float  # wall time of the whole loop (drawing the start state, the chunks, checks)
    bn_stats: Any = None  # the model's evaluation statistics (the lecture: calibrated BatchNorm)
    split_losses: dict[str, float] | None = None  # {"train", "val", "test"} with bn_stats

    @property
    def params(self) -> Any:
        return self.state.params

    @property
    def losses(self) -> np.ndarray:
        """The loss of every step done, in order (for the plot)."""
        return self.state.losses


def start_state(config: TrainConfig, vocab_size: int, model: Trainable | None = None) -> TrainState:
    """Step 0 of a run of ``model`` (default: the lecture's): its parameters, statistics and
    batch key, from ``config.seed`` (:attr:`Trainable.start`)."""
    params, stats, batch_key = trainable_of(model).start(config, vocab_size)
    return TrainState(params, 0, batch_key, np.zeros(0, np.float32), stats)


class ChunkClock:
    """Times a loop's chunks: the first chunk of each length may include compiling, so its time
    counts as compile time; the others give the steps/s (None while every chunk compiled)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.warm_steps, self.warm_s, self.compile_s = 0, 0.0, 0.0

    def add(self, n_steps: int, seconds: float) -> bool:
        """Record a chunk of ``n_steps``; True if it was the first of its length (compiled)."""
        compiled = n_steps not in self.seen
        self.seen.add(n_steps)
        if compiled:
            self.compile_s += seconds
        else:
            self.warm_steps, self.warm_s = self.warm_steps + n_steps, self.warm_s + seconds
        return compiled

    @property
    def steps_per_s(self) -> float | None:
        return self.warm_steps / self.warm_s if self.warm_s > 0 else None


def next_boundary(step: int, end: int, *everies: int) -> int:
    """The next step after ``step`` that ends a chunk: a multiple of the chunk length, of each
    non-zero ``every`` (checks, checkpoints), or the end of the run."""
    return min([end] + [(step // n + 1) * n for n in everies if n > 0])


@partial(jax.jit, static_argnames=("step_fn", "loss_fn"))
def _both_gradients(
    params: Any, stats: Any, xb: jax.Array, yb: jax.Array, step_fn: Step, loss_fn: Any
) -> tuple[Any, Any]:
    """The manual gradients and ``jax.grad``'s, on one batch, in one compiled program."""
    return step_fn(params, stats, xb, yb)[1], jax.grad(loss_fn)(params, xb, yb)


def check_gradients(
    params: Any,
    batch_key: jax.Array,
    step: int,
    x: jax.Array,
    y: jax.Array,
    batch_size: int,
    model: Trainable | None = None,
    stats: Any = None,
) -> str | None:
    """Compare ``model``'s manual backward (default: the lecture's fused one) with ``jax.grad``
    of its forward on step ``step``'s own batch.

    Raises :class:`TrainingError` naming the step and the parameter if one is more than
    :data:`jaxninja.numerics.TRAINING_CHECK` eps·scale off, at the scale of the largest gradient
    of all parameters (the lecture's ``db1`` is zero by symmetry, so its own size is rounding
    noise): float rounding in these sums of a few hundred terms stays well inside that, while a
    wrong formula is off by a fraction of the gradient itself.

    Where the bound does not hold for a correct backward (BatchNorm over a tiny batch whose
    variance is nearly singular: at batch 3 a correct ``dC`` was 490 eps·scale off in float32)
    a float32 failure is recomputed in float64 on the same batch: a mistake stays off there, a
    rounding difference vanishes. Then the step is not stopped and the note returned says so.
    """
    model = trainable_of(model)
    ix = batch_indices(batch_key, np.int32(step), batch_size, x.shape[0])
    rows, scale = _rows(params, stats, x[ix], y[ix], model)
    row = next((r for r in rows.values() if not r.ok), None)
    if row is None:
        return None
    bound = numerics.TRAINING_CHECK
    text = (
        f"step {step}: manual d{row.name} differs from jax.grad by {row.maxdiff:.3g} "
        f"({row.eps_scale:.3g} eps·scale, bound {bound:g} at max|grad| {scale:.3g})"
    )
    wide = _in_float64(params, stats, x[ix], y[ix], model)
    if wide is None:  # float64 already, or it could not be recomputed: the verdict stands
        raise TrainingError(text)
    e64 = wide[row.name].eps_scale
    if not e64 <= max(ROUNDING_RATIO * row.eps_scale, numerics.ROUNDING):
        raise TrainingError(f"{text}; {e64:.3g} eps·scale in float64 too: a mistake")
    return (
        f"{text} in float32, and {e64:.3g} eps·scale in float64 on the same batch: rounding "
        "(a rounding difference stays the same in eps·scale in either dtype, a mistake grows "
        "~5e8 times), e.g. BatchNorm over a batch whose variance is nearly singular; training "
        "goes on"
    )


def _rows(params: Any, stats: Any, xb: jax.Array, yb: jax.Array, model: Trainable):
    """Every parameter's manual gradient against ``jax.grad`` (rows by name), and the scale."""
    mine, reference = _both_gradients(params, stats, xb, yb, model.step, model.loss)
    names = param_names(params)
    mine, reference = (jax.tree.leaves(jax.device_get(t)) for t in (mine, reference))
    scale = max(numerics.row_scale(r) for r in reference)
    bound = numerics.TRAINING_CHECK
    rows = {
        name: compare(name, g, r, "jax.grad", scale=scale, bound=bound)
        for name, g, r in zip(names, mine, reference, strict=True)
    }
    return rows, scale


def _in_float64(params: Any, stats: Any, xb: jax.Array, yb: jax.Array, model: Trainable):
    """:func:`_rows` on the same inputs in float64, or None when the run is float64 already
    or the recomputation fails (then the float32 verdict stands)."""
    if jax.tree.leaves(params)[0].dtype != np.float32:
        return None
    try:
        with jax.enable_x64(True):  # this thread only: a validation point may be computing
            wide = jax.tree.map(lambda a: np.asarray(a, np.float64), (params, stats))
            return _rows(*wide, np.asarray(xb), np.asarray(yb), model)[0]
    except Exception:  # a model that cannot run in float64: the float32 verdict stands
        return None


def train_loop(
    config: TrainConfig,
    dataset: Dataset,
    *,
    state: TrainState | None = None,
    model: Trainable | None = None,
    chunk_steps: int = CHUNK_STEPS,
    check_every: int = 0,
    checkpoint_every: int = 0,
    save: Callable[[TrainState], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    device: jax.Device | None = None,
    mesh: Mesh | None = None,
    val_every: int = 0,
    val_loss: Callable[[TrainState], float] | None = None,
) -> TrainResult:
    """Run SGD with ``model``'s manual backward (default: the lecture's) from ``state``
    (default: a fresh start) to ``config.steps``.

    Chunks end at multiples of ``chunk_steps``, ``check_every`` and ``checkpoint_every``, so the
    batches and updates do not depend on where a run was interrupted. ``save(state)`` is called at
    each multiple of ``checkpoint_every`` and when ``should_stop()`` turns true (checked after
    every chunk; then the result has ``interrupted=True``). A non-finite loss raises
    :class:`NonFiniteLoss` naming its step; nothing is saved after it. With ``mesh``
    (``parallel.make_mesh(N)``) every step's batch is split over its N devices, BatchNorm
    synchronised (see parallel.py); ``device`` is then not used. ``val_loss(state)`` is
    called at every multiple of ``val_every`` and at the end; its values make the state's
    ``val_curve`` (loss.png's validation points).
    """
    config.validate()
    float_dtype(config.dtype)
    check_loop_settings(chunk_steps, check_every, checkpoint_every, val_every)
    t_start = time.perf_counter()  # wall_s: from the start state's draw to the last chunk
    model = trainable_of(model)
    state = state or start_state(config, dataset.vocab.size, model)
    batch_sharding, key = None, state.batch_key
    if mesh is None:
        x, y, params, stats = jax.device_put(
            (dataset.train.x, dataset.train.y, state.params, state.stats), device
        )
    else:  # replicated on every device of every process; each gathers its rows in the step
        parallel.check_divisible(config.batch_size, mesh.size)
        batch_sharding = parallel.chunk_sharding(mesh)
        x, y, params, stats, key = parallel.replicate(
            mesh, (dataset.train.x, dataset.train.y, state.params, state.stats, state.batch_key)
        )
    step, losses = state.step, [state.losses]
    val_points = [] if state.val_curve is None else [tuple(p) for p in state.val_curve]
    later = Later("jaxninja-val") if val_loss else None  # the curve beside the next chunks
    if model.validate is not None and step == 0:  # the protocol, held to on step 0's batch
        ix = batch_indices(key, np.int32(0), config.batch_size, x.shape[0])
        model.validate(params, stats, x[ix], y[ix])

    def current() -> TrainState:
        curve = None
        if later is not None:  # the points measured so far, waited for (each well under 1 s)
            for at, value in later.results():  # a failed point is a gap, never a lost run
                val_points.append(
                    (at, float(value) if not isinstance(value, Exception) else np.nan)
                )
            curve = np.asarray(val_points, np.float64).reshape(-1, 2)
        return TrainState(params, step, state.batch_key, np.concatenate(losses), stats, curve)

    def measure(state: TrainState) -> None:
        later.submit(state.step, lambda: val_loss(state))

    def chunk(step: int, n: int) -> tuple[Any, jax.Array]:
        new_params, new_stats, chunk_losses = train_chunk(
            model.step, params, stats, key, np.int32(step), x, y, n, config.batch_size,
            config.schedule, batch_sharding=batch_sharding,
        )  # fmt: skip
        return (new_params, new_stats), chunk_losses

    def keep(new: tuple[Any, Any], chunk_losses: np.ndarray, end: int) -> None:
        nonlocal params, stats, step
        (params, stats), step = new, end
        losses.append(chunk_losses)

    def non_finite(chunk_losses: np.ndarray, first: int, last_saved: int | None) -> Exception:
        i = int((~np.isfinite(chunk_losses)).argmax())
        return NonFiniteLoss(first + i, float(chunk_losses[i]), last_saved)

    notes: list[str] = []

    def check(step: int) -> None:
        note = check_gradients(params, key, step, x, y, config.batch_size, model, stats)
        if note is not None and not notes:  # said once a run; rounding does not change
            print(f"jaxninja: note: {note}", file=sys.stderr, flush=True)
        if note is not None:
            notes.append(note)

    hooks = LoopHooks(chunk_steps, check_every, checkpoint_every, save, should_stop, on_chunk)
    hooks = hooks._replace(measure_every=val_every, measure=measure if val_loss else None)
    try:
        clock = run_chunks(
            Chunked(chunk, keep, non_finite, check, current), state.step, config.steps, hooks
        )
    finally:
        if later is not None:
            later.close()
    wall_s = time.perf_counter() - t_start
    interrupted = step < config.steps
    return TrainResult(current(), interrupted, clock.steps_per_s, clock.compile_s, wall_s)


def check_loop_settings(
    chunk_steps: int, check_every: int, checkpoint_every: int, val_every: int = 0
) -> None:
    """The loop's own settings, refused before any work when out of range (from Python they
    reach the loop without the command line's checks: ``check_every=-1`` trained unchecked)."""
    checks.check_int(checks.CHUNK_STEPS, chunk_steps, 1)
    checks.check_steps(check_every, checks.CHECK_EVERY)
    checks.check_steps(checkpoint_every, checks.CHECKPOINT_EVERY)
    checks.check_steps(val_every, checks.VAL_EVERY)


class Chunked(NamedTuple):
    """What a training loop does in :func:`run_chunks`' chunk body: one run's (:func:`train_loop`)
    or K runs' (:func:`jaxninja.training.stacked.train_runs`)."""

    chunk: Callable[[int, int], tuple[Any, Any]]  # (step, n): new parameters, the n losses
    keep: Callable[[Any, np.ndarray, int], None]  # accept the chunk: parameters, losses, new step
    non_finite: Callable[[np.ndarray, int, int | None], Exception]  # losses, step, last saved
    check: Callable[[int], None]  # --check-every at a step
    current: Callable[[], Any]  # the state(s) to save


class LoopHooks(NamedTuple):
    """The loop settings :func:`train_loop` and :func:`jaxninja.training.stacked.train_runs`
    both take (their keyword arguments of the same names), handed to :func:`run_chunks` as one."""

    chunk_steps: int
    check_every: int
    checkpoint_every: int
    save: Callable[[Any], None] | None
    should_stop: Callable[[], Any] | None
    on_chunk: Callable[[ChunkReport], None] | None
    measure_every: int = 0  # measure(current()) at its multiples and at the end (0: never)
    measure: Callable[[Any], None] | None = None


def run_chunks(loop: Chunked, step: int, end: int, hooks: LoopHooks) -> ChunkClock:
    """The chunk body both loops share, from ``step`` to ``end``: check the gradients at
    multiples of ``check_every``, train to the next boundary, refuse a non-finite loss (before
    keeping the chunk: nothing is saved after it), keep it, report it, then stop or save
    (:func:`chunk_end`). Returns the clock of the chunks' times."""
    chunk_steps, check_every, checkpoint_every, save, should_stop, on_chunk = hooks[:6]
    every = hooks.measure_every if hooks.measure else 0
    last_saved = step if step > 0 else None
    clock = ChunkClock()
    while step < end:
        if check_every and step % check_every == 0:
            loop.check(step)
        n = next_boundary(step, end, chunk_steps, check_every, checkpoint_every, every) - step
        t0 = time.perf_counter()
        new_params, chunk_losses = loop.chunk(step, n)
        chunk_losses = np.asarray(chunk_losses)
        seconds = time.perf_counter() - t0
        if not np.isfinite(chunk_losses).all():
            raise loop.non_finite(chunk_losses, step, last_saved)
        step += n
        loop.keep(new_params, chunk_losses, step)
        compiled = clock.add(n, seconds)
        if on_chunk:
            on_chunk(ChunkReport(step, n, float(chunk_losses.mean()), seconds, compiled))
        if every and (step % every == 0 or step == end):
            hooks.measure(loop.current())
        leave, saved = chunk_end(step, end, checkpoint_every, should_stop, save, loop.current)
        last_saved = step if saved else last_saved
        if leave:
            break
    return clock


def chunk_end(
    step: int,
    end: int,
    checkpoint_every: int,
    should_stop: Callable[[], Any] | None,
    save: Callable[[Any], None] | None,
    current: Callable[[], Any],
) -> tuple[bool, bool]:
    """A training loop's step boundary after a chunk that ended at ``step``: (leave the loop,
    saved). At ``end`` nothing is saved (the caller saves the finished run, with calibrated
    statistics); before it ``should_stop()`` is asked, and ``save(current())`` is called at a
    multiple of ``checkpoint_every`` or when stopping. Shared by :func:`train_loop` and
    :func:`jaxninja.training.stacked.train_runs`, so one run and K runs stop and save alike."""
    if step == end:
        return True, False
    stop = should_stop is not None and bool(should_stop())
    if save and (stop or (checkpoint_every and step % checkpoint_every == 0)):
        save(current())
        return stop, True
    return stop, False


def train(
    config: TrainConfig | None = None,
    dataset: Dataset | None = None,
    *,
    evaluate: bool = True,
    **loop_options: Any,
) -> TrainResult:
    """Train in memory: :func:`train_loop` (``loop_options`` are its keywords), then, for a
    finished run and unless ``evaluate=False``, calibrate BatchNorm and compute the split losses.

    ``config`` defaults to the lecture's Exercise 4 and ``dataset`` to :func:`load_dataset` of
    ``--data`` / ``$JAXNINJA_NAMES`` / the default data set at the config's block size. A
    float64 config turns on ``jax_enable_x64`` for this call and restores it after
    (:func:`jaxninja.checks.dtype_scope`).
    """
    checks.check_type(config, (TrainConfig, type(None)), "config", "a TrainConfig")
    checks.check_type(dataset, (Dataset, type(None)), "dataset", "a Dataset (load_dataset)")
    loop = set(inspect.signature(train_loop).parameters) - {"config", "dataset"}
    checks.check_keywords(loop_options, loop, "train", "settings go in the config, e.g. "
                          "jaxninja.train(TrainConfig(steps=10))")  # fmt: skip
    config = TrainConfig() if config is None else config
    model = trainable_of(loop_options.pop("model", None))
    with dtype_scope(config.dtype):  # float64: x64 on for this call only
        dataset = load_dataset(None, config.block_size) if dataset is None else dataset
        result = train_loop(config, dataset, model=model, **loop_options)
        if not evaluate or result.interrupted:
            return result
        state = result.state
        stats = None if model.finish is None else model.finish(state.params, state.stats,
                                                              dataset.train.x)  # fmt: skip
        if model.logits is None:
            return result._replace(bn_stats=stats)
        losses = split_losses(result.params, stats, dataset, model.logits)
    return result._replace(bn_stats=stats, split_losses=losses)
