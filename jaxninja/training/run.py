"""A training run into a folder: create or resume, train, save, then finish. ``jaxninja train``
is one call of :func:`run_training`; a notebook gets the same files and numbers from it::

    import jaxninja

    run = jaxninja.run_training(jaxninja.TrainConfig(steps=20_000), "runs/short")
    print(run.split_losses, run.samples[:5])
    jaxninja.run_training({"steps": 40_000}, "runs/short", resume="runs/short")  # continue

The folder and its rules (what is saved when, the summary) are :mod:`jaxninja.training.rundir`'s;
the options one run shares with many runs (:mod:`jaxninja.training.many`) are one
:class:`RunOptions`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
from jax.sharding import Mesh

from jaxninja import checks
from jaxninja.config import DEFAULT_OUT, TrainConfig
from jaxninja.data import MAX_DATA_BYTES, Dataset, load_dataset, recorded
from jaxninja.devices import distributed, parallel
from jaxninja.errors import CheckpointError, ConfigError, NonFiniteLoss, TrainingError
from jaxninja.io import runfolder
from jaxninja.io.checkpoint import (
    CHECKPOINT_NAME,
    MAX_TOTAL_BYTES,
    check_same_data,
    checkpoint_file,
    load_checkpoint,
    refuse_diverged,
)
from jaxninja.lecture.step import learning_rate
from jaxninja.models.trainable import Trainable, count_params, defaults_config, trainable_of
from jaxninja.training import memory, warmup
from jaxninja.training.evaluate import split_loss
from jaxninja.training.loop import ChunkReport, TrainResult, TrainState, train_loop
from jaxninja.training.progress import reporter
from jaxninja.training.rundir import (
    LOSSES_NAME,
    PLOT_NAME,
    SUMMARY_NAME,
    Log,
    check_same_model,
    finish_state,
    finishing_step,
    host_state,
    kept_checkpoint,
    resolve_config,
    resumed_state,
    run_summary,
    save_run,
    save_then_calibrate,
    say,
    write_summary,
)


class RunOptions(NamedTuple):
    """The options one run (:func:`run_training`) and many runs (:func:`jaxninja.run_many`)
    share, in one record; each function also takes them as keywords of the same names.

    ``data`` defaults to the checkpoint's recorded data on resume, else ``$JAXNINJA_NAMES``, else
    the default data set (``"-"``: standard input, at most ``max_data_bytes``). ``resume``: a
    checkpoint file or a run's folder; an ``out`` that holds a run needs it or ``overwrite``.
    ``samples`` names are drawn at the end; ``check_every`` / ``checkpoint_every`` steps (0:
    never) check the manual gradients against ``jax.grad`` / save. ``progress``: a bar (True),
    nothing (False) or a function of each chunk's report. ``should_stop()`` is asked after every
    chunk; when it turns true (e.g. a signal number) the state is saved and the result says
    ``interrupted``. ``on_start()`` is called when everything has been checked and training
    begins; ``on_saved(path)`` once the trained state is safe on disk, before finishing; ``log``
    gets each status line (None: silence). ``model``: the model to train, a model file
    (``FILE`` or ``FILE:NAME``, see :mod:`jaxninja.models.protocol`) or a
    :class:`~jaxninja.models.trainable.Trainable`; None trains the lecture's MLP. Resuming a
    model file whose source differs from the checkpoint's record needs ``allow_model_change``.
    """

    data: str | os.PathLike | None = None
    resume: str | os.PathLike | None = None
    overwrite: bool = False
    max_data_bytes: int = MAX_DATA_BYTES
    samples: int = 20
    check_every: int = 0
    checkpoint_every: int = 0
    device: str = "auto"
    progress: bool | Callable[[ChunkReport], None] = True
    should_stop: Callable[[], Any] | None = None
    on_start: Callable[[], None] | None = None
    on_saved: Callable[[Path], None] | None = None
    log: Log | None = print
    model: str | os.PathLike | Trainable | None = None  # a model file (FILE[:NAME]); None: lecture
    val_every: int | None = None  # validation loss every N steps for loss.png (None: 10 points)
    allow_model_change: bool = False  # resume a model file whose source changed (by its hash)

    @classmethod
    def given(cls, options: RunOptions | None, keywords: Mapping[str, Any], caller: str):
        """``options`` (default: the defaults) with ``keywords`` changed; an unknown keyword is
        the TypeError Python gives a function that does not take it."""
        for name in keywords:
            if name not in cls._fields:
                raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
        return (options or cls())._replace(**keywords)

    def check(self) -> None:
        """Refuse an option out of range (before any work), naming it (its keyword from Python,
        its flag from the command line)."""
        checks.check_steps(self.check_every, checks.CHECK_EVERY)
        checks.check_steps(self.checkpoint_every, checks.CHECKPOINT_EVERY)
        checks.check_steps(self.samples, checks.SAMPLES)
        if self.val_every is not None:
            checks.check_steps(self.val_every, checks.VAL_EVERY)
        checks.check_int(checks.MAX_DATA_BYTES, self.max_data_bytes, 1)


class RunResult(NamedTuple):
    """What :func:`run_training` did: the folder, the settings, the loop's result and (for a
    finished run) the summary written to ``summary.json`` and the sampled names."""

    out: Path
    config: TrainConfig
    result: TrainResult
    summary: dict[str, Any] | None  # None: interrupted before the end
    samples: list[str]
    stop_code: int = 0  # interrupted: what should_stop returned (several processes: agreed)

    @property
    def interrupted(self) -> bool:
        return self.result.interrupted

    @property
    def checkpoint(self) -> Path:
        return self.out / CHECKPOINT_NAME

    @property
    def split_losses(self) -> dict[str, float] | None:
        return None if self.summary is None else self.summary["losses"]


class Run(NamedTuple):
    """A run ready to start: settings, data, folder, device(s), the model and (on resume) its
    state."""

    config: TrainConfig
    dataset: Dataset
    out: Path
    device: jax.Device
    mesh: Mesh | None  # devices > 1: the batch is split over these devices
    state: TrainState | None  # None: start from the seed
    resume: Path | None  # the checkpoint file resumed from
    model: Trainable


class Single(NamedTuple):
    """What only one run takes (many runs are spread over the devices already)."""

    allow_other_data: bool = False  # resume on words other than the checkpoint's (by hash)
    devices: int | None = None  # the batch over N devices; None: one, or every process's all


# ----------------------------------------------------------------------------------- settings


def prepare(
    config: TrainConfig | Mapping[str, Any] | None,
    out: str | os.PathLike | None,
    options: RunOptions,
    single: Single,
    agree: str,
    scope: contextlib.ExitStack,
) -> Run:
    """Everything that can be refused, refused before any training: the settings (fresh or
    from the checkpoint), the device(s), the data, the memory the run needs and the folder.

    Several processes agree at two points (:func:`jaxninja.devices.distributed.agreed`): on their
    arguments (``agree``, the caller's fingerprint of them), then on the prepared run (settings,
    data hash, step); any failure or difference ends every process with one line. On resume,
    process 0 reads the checkpoint and broadcasts it; only process 0 touches ``out``. The run's
    dtype rule (:func:`jaxninja.checks.dtype_scope`) is entered on ``scope``, which the caller
    holds open while the run lasts.
    """

    def check_arguments() -> None:
        options.check()
        distributed.check_joined()
        if single.devices is not None:
            checks.check_devices(single.devices)

    distributed.agreed("checking the settings", check_arguments, lambda _: agree)
    path = checkpoint_file(options.resume, "resume") if options.resume is not None else None
    readable = path
    if path is not None and distributed.is_multiprocess():
        shared = distributed.shared_files(
            (path, path.parent / LOSSES_NAME), (CHECKPOINT_NAME, LOSSES_NAME), MAX_TOTAL_BYTES
        )
        readable = path if distributed.is_writer() else shared / CHECKPOINT_NAME
    try:
        return distributed.agreed(
            "preparing the run",
            lambda: _prepare(config, out, options, single, path, readable, scope),
            _run_fingerprint,
        )
    finally:
        if readable is not None and readable != path:  # the broadcast copy, now in memory
            shutil.rmtree(readable.parent, ignore_errors=True)


def _agreement(config: Any, options: RunOptions, single: Single) -> str:
    """The arguments every process of a run must have been given alike."""
    return json.dumps(
        {
            "config": dict(config.fields() if isinstance(config, TrainConfig) else config or {}),
            "resume": options.resume is not None, "samples": options.samples,
            "check_every": options.check_every, "checkpoint_every": options.checkpoint_every,
            "devices": single.devices, "max_data_bytes": options.max_data_bytes,
            "allow_other_data": single.allow_other_data, "model": str(options.model),
        },
        sort_keys=True, default=str,
    )  # fmt: skip


def _run_fingerprint(run: Run) -> str:
    """What every process must share: the settings, the words, the starting step."""
    step = run.state.step if run.state else 0
    fields = {"config": run.config.to_dict(), "data": run.dataset.data_hash, "step": step}
    fields["model"] = run.model.recorded
    return json.dumps(fields | {"devices": run.mesh.size if run.mesh else 1}, sort_keys=True)


def _prepare(
    config: TrainConfig | Mapping[str, Any] | None,
    out: str | os.PathLike | None,
    options: RunOptions,
    single: Single,
    path: Path | None,
    readable: Path | None,
    scope: contextlib.ExitStack,
) -> Run:
    """:func:`prepare` in one process; ``readable`` is where this process reads the checkpoint
    ``path`` (process 0's file, or its broadcast copy)."""
    model = trainable_of(options.model)
    ckpt = load_checkpoint(readable) if readable is not None else None
    refuse_diverged(ckpt, path)
    if ckpt is not None:
        check_same_model(path, ckpt, model, options.allow_model_change, options.log)
    if ckpt is None:
        config = defaults_config(model, config)
    run_config = resolve_config(config, ckpt.config if ckpt else None, str(path))
    if ckpt is not None and run_config.steps < ckpt.step:
        raise ConfigError(
            checks.STEPS,
            f" {run_config.steps:,} is below the checkpoint's step {ckpt.step:,} ({path})",
        )
    scope.enter_context(checks.dtype_scope(run_config.dtype))
    jax_device = checks.resolve_device(options.device)
    several = distributed.is_multiprocess()
    if several:  # this process's own device: the others' are not addressable here
        jax_device = jax.local_devices(backend=jax_device.platform)[0]
    devices = single.devices
    n_devices = devices if devices is not None else (jax.device_count() if several else 1)
    mesh = None
    if n_devices != 1 or several:
        mesh = parallel.make_mesh(n_devices, jax_device.platform)
        parallel.check_divisible(run_config.batch_size, n_devices)
    data = options.data
    source = data if data is not None or ckpt is None else recorded(ckpt.config.get("data"))
    dataset = load_dataset(source, run_config.block_size, options.max_data_bytes)
    if ckpt is not None:  # read again, now expecting this data's vocabulary
        try:
            ckpt = load_checkpoint(readable, expect_vocab=dataset.vocab)
        except CheckpointError as err:
            raise CheckpointError(err, f" ({dataset.source})") from None
        note = check_same_data(readable, ckpt, dataset, single.allow_other_data)
        if note:
            say(options.log, f"note: {note}")
    samples = options.samples
    needed = memory.run_bytes(run_config, len(dataset.train.y), dataset.vocab.size, samples)
    what = (f"this run ({run_config.steps:,} steps, ", checks.SAMPLES, f" {samples:,})")
    memory.check_fits(needed, what)
    folder = (
        runfolder.given(out)
        if out is not None
        else (path.parent if path is not None else Path(DEFAULT_OUT))
    )
    if distributed.is_writer():  # only process 0 writes, so only its folder is checked
        folder = runfolder.claim(folder, path, options.overwrite, scope)
    state = None if ckpt is None else resumed_state(ckpt, readable.parent, model, run_config)
    return Run(run_config, dataset, folder, jax_device, mesh, state, path, model)


# ----------------------------------------------------------------------------------- the run


def run_training(
    config: TrainConfig | Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    *,
    allow_other_data: bool = False,
    devices: int | None = None,
    **keywords: Any,
) -> RunResult:
    """Train into the folder ``out`` (default ``out``, or the resumed run's folder) and finish.

    ``config``: a :class:`TrainConfig`, or the settings to change (fresh: from the defaults;
    with ``resume``, a checkpoint file or folder: from the checkpoint's, where only ``steps``
    may differ). ``options``: a :class:`RunOptions`, and/or its fields as ``keywords``
    (``data=``, ``resume=``, ``samples=``, ``log=``, ...). Resuming on words other than the
    checkpoint's (by their hash) needs ``allow_other_data``; ``devices`` splits the batch over N
    devices. With several processes (:mod:`jaxninja.devices.distributed` initialised) the batch
    is split over every device of every process, the processes agree on stopping after every
    chunk (the largest ``should_stop()`` value of all; the result's ``stop_code``), only process
    0 writes files and logs, and a collective that fails because another process left is a
    :class:`DistributedError` naming the checkpoint kept.
    """
    checks.check_type(config, (TrainConfig, Mapping, type(None)), "config", "TrainConfig or dict")
    options = RunOptions.given(options, keywords, "run_training")
    single = Single(allow_other_data, devices)
    if distributed.is_multiprocess() and not distributed.is_writer():  # process 0 speaks
        quiet = False if options.progress is True else options.progress
        options = options._replace(log=None, progress=quiet)
    with contextlib.ExitStack() as scope:  # float64: x64 on until the run is finished
        run = prepare(config, out, options, single, _agreement(config, options, single), scope)
        return _train(run, options)


def _train(run: Run, options: RunOptions) -> RunResult:
    """Train the prepared ``run`` and finish it (:func:`run_training` after :func:`prepare`)."""
    several = distributed.is_multiprocess()
    config, dataset, folder, log = run.config, run.dataset, run.out, options.log
    start = run.state.step if run.state else 0
    if options.on_start is not None:
        options.on_start()
    say(log, _start_line(run, start))
    bar, on_chunk = reporter(options.progress, start, config.steps)
    saved = [start if start > 0 else None]
    stop_code = [0]

    def save(state: TrainState) -> None:
        try:
            save_then_calibrate(folder, state, dataset, config, run.model)
        except CheckpointError as err:  # disk full: say which checkpoint is still on disk
            raise CheckpointError(f"{err} at step {state.step:,}; {kept()}") from None
        saved[0] = state.step

    def stop() -> int:  # several processes: all stop at the same chunk, or none does
        local = options.should_stop() if options.should_stop is not None else 0
        stop_code[0] = distributed.agree_stop(int(local or 0)) if several else int(local or 0)
        return stop_code[0]

    def kept() -> str:
        if not distributed.is_writer():
            return "process 0 keeps the last good checkpoint"
        return kept_checkpoint(saved[0], start, folder, run.resume)

    committed = None if options.device == "auto" else run.device  # None: uncommitted
    warm = None  # the finishing programs, compiled beside the loop's start (one device only)
    if run.mesh is None and not several and run.model.warm:
        warm = warmup.start(config, dataset, options.samples, committed)
        on_chunk = warm.stopping_first(on_chunk)
    try:
        with distributed.lost_contact(kept) if several else contextlib.nullcontext():
            result = train_loop(
                config,
                dataset,
                state=run.state,
                model=run.model,
                **val_curve(run, options.val_every),
                check_every=options.check_every,
                checkpoint_every=options.checkpoint_every,
                save=save,
                should_stop=stop if (several or options.should_stop is not None) else None,
                on_chunk=on_chunk,
                device=committed,
                mesh=run.mesh,
            )
    except NonFiniteLoss as err:
        kept_now = kept_checkpoint(err.last_saved, start, folder, run.resume)
        lr = float(learning_rate(config.schedule, err.step))
        raise TrainingError(f"{err} (lr {lr:g}); {kept_now}") from None
    finally:
        if bar is not None:
            bar.close()
        if warm is not None:  # done long before, unless the run was short
            warm.join()
    if result.interrupted:
        return RunResult(folder, config, result, None, [], stop_code[0])
    if several:
        result = result._replace(state=host_state(result.state))
    try:
        save_run(folder, result.state, None, dataset, config, run.model)  # safe from here on
    except CheckpointError as err:
        raise CheckpointError(f"{err} at step {result.state.step:,}; {kept()}") from None
    if options.on_saved is not None:
        options.on_saved(folder / CHECKPOINT_NAME)
    return _finish(run, result, options.samples, log)


VAL_POINTS = 10  # loss.png's validation points by default: each costs a calibration (~0.1 s)


def val_interval(steps: int) -> int:
    """The default spacing of loss.png's validation points: :data:`VAL_POINTS` of them, on
    multiples of 1,000 steps (every 20,000 in the lecture's 200,000), at least every 1,000."""
    return max(1_000, steps // VAL_POINTS // 1_000 * 1_000)


def val_curve(run: Run, every: int | None) -> dict[str, Any]:
    """``train_loop``'s validation-curve arguments (:func:`val_curve_of`) for ``run``. A run over
    several devices or processes measures each point on a host copy of the (replicated)
    parameters, on this process's default device, as its finishing and ``evaluate`` do: no
    collective on the second thread, so the processes' training programs are never interleaved
    with it (every process measures its own point; process 0 writes them)."""
    args = val_curve_of(run.model, run.dataset, run.config.steps, every)
    if args and (run.mesh is not None or distributed.is_multiprocess()):
        on_device = args["val_loss"]
        args["val_loss"] = lambda state: on_device(host_state(state))
    return args


def val_curve_of(
    model: Trainable, dataset: Dataset, steps: int, every: int | None
) -> dict[str, Any]:
    """The validation-curve arguments of a loop (``val_every``, ``val_loss``) training
    ``model`` on ``dataset`` for ``steps``: the loss on the validation split, with the model's
    evaluation statistics (the lecture: BatchNorm calibrated over the training split), exactly
    as ``evaluate`` computes it at that step, every ``every`` steps (None:
    :func:`val_interval`); none for a model without ``logits`` or with ``every`` 0. Shared by one
    run (:func:`jaxninja.training.loop.train_loop`) and K runs
    (:func:`jaxninja.training.stacked.train_runs`, each run's state in turn)."""
    every = val_interval(steps) if every is None else every
    if not every or model.logits is None:
        return {}

    def val_loss(state: TrainState) -> float:
        stats = None
        if model.finish is not None:
            stats = model.finish(state.params, state.stats, dataset.train.x)
        val = dataset.val
        return float(split_loss(state.params, stats, val.x, val.y, logits=model.logits))

    return {"val_every": every, "val_loss": val_loss}


def _start_line(run: Run, start: int) -> str:
    ds, device = run.dataset, run.device
    where = f"{device.platform} ({device}{f' x {run.mesh.size}' if run.mesh else ''})"
    if jax.process_count() > 1:
        where = f"{device.platform} ({run.mesh.size} devices of {jax.process_count()} processes)"
    return (
        f"training on {ds.source} ({len(ds.train.y):,} examples, vocabulary {ds.vocab.size}) "
        f"for steps {start:,}..{run.config.steps:,} on {where}, {run.config.dtype}"
    )


def _finish(run: Run, result: TrainResult, num_samples: int, log: Log | None) -> RunResult:
    """Calibrate (rewriting the checkpoint with the statistics), evaluate, sample, then write
    summary.json and loss.png; the checkpoint is already safe when this starts."""
    config, out, state = run.config, run.out, result.state
    stats, losses, names = finish_state(out, state, config, run.dataset, num_samples, run.model)
    result = result._replace(bn_stats=stats, split_losses=losses)
    summary = run_summary(config, run.dataset, run.device, result, run.model)
    summary["samples"] = names
    if distributed.is_writer():  # the others computed the same, to reach the exit together
        write_summary(out, summary, state.step)
        plot_args = (state, out / PLOT_NAME, config.steps)
        finishing_step("plotting the loss", out, state.step, plot_run, *plot_args)
    say(log, _result_line(result))
    for name in names:
        say(log, name)
    say(log, f"wrote {out / CHECKPOINT_NAME}, {out / SUMMARY_NAME}, {out / PLOT_NAME}")
    return RunResult(out, config, result, summary, names)


def plot_run(state: TrainState, path: Path, steps: int) -> None:
    """``loss.png`` of one run (imports matplotlib: only when a run finishes)."""
    from jaxninja.training.plots import plot_loss

    title = f"{count_params(state.params):,} parameters, {steps:,} steps"
    plot_loss(state.losses, path, title=title, val=state.val_curve)


def _result_line(result: TrainResult) -> str:
    rate = "steps/s n/a: every chunk compiled"
    if result.steps_per_s is not None:
        rate = f"{result.steps_per_s:,.0f} steps/s"
    timing = f"({rate}; {result.wall_s:.1f} s incl. {result.compile_s:.1f} s compiling)"
    if result.split_losses is None:  # the model has no logits(): nothing was evaluated
        return f"trained; no split losses (the model defines no logits) {timing}"
    losses = result.split_losses
    return (
        f"train {losses['train']:.4f}  val {losses['val']:.4f}  test {losses['test']:.4f}  "
        + timing
    )
