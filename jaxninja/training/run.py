"""A training run into a folder: create or resume, train, save, then finish. ``jaxninja train``
is one call of :func:`run_training`; a notebook gets the same files and numbers from it::

    import jaxninja

    run = jaxninja.run_training(jaxninja.TrainConfig(steps=20_000), "runs/short")
    print(run.split_losses, run.samples[:5])
    jaxninja.run_training({"steps": 40_000}, "runs/short", resume="runs/short")  # continue

The folder holds ``checkpoint.npz`` (parameters, calibrated BatchNorm statistics, vocabulary,
configuration, step, RNG key), ``losses.npy`` (every step's loss), ``summary.json`` and
``loss.png``. **Nothing is lost**: the trained state is saved *before* anything that could fail
afterwards (calibration, split losses, samples, plot), and each of those names, when it fails,
the checkpoint that is safe; periodic saves follow the same order.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxninja import checks
from jaxninja.config import FLAGS, RUN_FIELDS, TrainConfig
from jaxninja.data import DEFAULT_SOURCE, MAX_DATA_BYTES, STDIN, STDIN_NAME, Dataset, load_dataset
from jaxninja.devices import distributed, parallel
from jaxninja.errors import (
    CheckpointError,
    ConfigError,
    JaxninjaError,
    NonFiniteLoss,
    TrainingError,
)
from jaxninja.io.atomic import prepare_out_dir, write_atomic
from jaxninja.io.checkpoint import (
    CHECKPOINT_NAME,
    MAX_TOTAL_BYTES,
    Checkpoint,
    check_same_data,
    checkpoint_file,
    load_checkpoint,
    save_checkpoint,
)
from jaxninja.io.safe_npz import read_npy
from jaxninja.lecture.model import BNStats, Params, n_params
from jaxninja.lecture.step import learning_rate
from jaxninja.training import memory, plan, warmup
from jaxninja.training.loop import (
    ChunkReport,
    TrainResult,
    TrainState,
    calibrate,
    sample_key,
    sample_names,
    split_losses,
    train_loop,
)
from jaxninja.training.progress import Progress

LOSSES_NAME = "losses.npy"  # every step's loss, saved next to the checkpoint for loss.png
SUMMARY_NAME = "summary.json"
PLOT_NAME = "loss.png"

Log = Callable[[str], None]


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
    """A run ready to start: settings, data, folder, device(s) and (on resume) its state."""

    config: TrainConfig
    dataset: Dataset
    out: Path
    device: jax.Device
    mesh: Mesh | None  # devices > 1: the batch is split over these devices
    state: TrainState | None  # None: start from the seed
    resume: Path | None  # the checkpoint file resumed from


# ----------------------------------------------------------------------------------- settings


def resolve_config(
    given: TrainConfig | Mapping[str, Any] | None, saved: dict[str, Any] | None, where: str = ""
) -> TrainConfig:
    """The run's settings. Fresh: ``given`` (a config, or the fields to change from the
    defaults). Resumed: the checkpoint's ``saved`` settings, where the run-defining fields of
    ``given`` must agree (only ``steps`` may change, and not below the checkpoint's step)."""
    if isinstance(given, TrainConfig):
        given = given._asdict()
    given = dict(given or {})
    unknown = sorted(set(given) - set(TrainConfig.field_names()))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    if saved is None:
        return TrainConfig(**given)
    try:
        stored = TrainConfig.from_dict(saved)
    except ConfigError as err:  # a checkpoint is input from a stranger: its settings too
        raise ConfigError(f"{where}: stored configuration is invalid: {err}") from None
    for field in RUN_FIELDS:
        if field in given and given[field] != getattr(stored, field):
            raise ConfigError(
                f"{FLAGS[field].flag} {given[field]} does not match the checkpoint {where} "
                f"({getattr(stored, field)}); drop the flag to resume"
            )
    return stored._replace(steps=given.get("steps", stored.steps))


def _refuse_overwrite(out: Path, resume: Path | None, overwrite: bool) -> None:
    """A folder that already holds a run (its checkpoint) or runs (a multi-run's plan or run
    folders) is continued (``resume`` names it) or replaced (``overwrite``), never silently
    written over."""
    if overwrite:
        return
    resumed = None if resume is None else resume.resolve()
    if plan.holds_runs(out) and resumed != out.resolve():
        raise ConfigError(
            f"--out {out} already holds runs ({plan.PLAN_NAME}, {plan.RUN_PREFIX}NN/); "
            f"continue them with --resume {out} or replace them with --overwrite"
        )
    existing = out / CHECKPOINT_NAME
    if existing.exists() and resumed != existing.resolve():
        raise ConfigError(
            f"--out {out} already holds a run ({CHECKPOINT_NAME}); continue it with --resume "
            f"{out} or replace it with --overwrite"
        )


def prepare(
    config: TrainConfig | Mapping[str, Any] | None,
    out: str | os.PathLike | None,
    *,
    data: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    allow_other_data: bool = False,
    max_data_bytes: int = MAX_DATA_BYTES,
    samples: int = 20,
    device: str = "auto",
    devices: int | None = None,
    log: Log | None = None,
    agree: str = "",
) -> Run:
    """Everything that can be refused, refused before any training: the settings (fresh or
    from the checkpoint), the device(s), the data, the memory the run needs and the folder.

    ``devices`` None: one device, or with several processes every device of every process.
    Several processes agree at two points (:func:`jaxninja.devices.distributed.agreed`): on their
    arguments (``agree``, the caller's fingerprint of them), then on the prepared run (settings,
    data hash, step); any failure or difference ends every process with one line. On resume,
    process 0 reads the checkpoint and broadcasts it; only process 0 touches ``out``.
    """

    def check_arguments() -> None:
        distributed.check_joined()
        checks.check_steps(samples, "--samples")
        if devices is not None:
            checks.check_devices(devices)
        checks.check_int("--max-data-bytes", max_data_bytes, 1)

    distributed.agreed("checking the settings", check_arguments, lambda _: agree)
    path = checkpoint_file(resume) if resume is not None else None
    readable = path
    if path is not None and distributed.is_multiprocess():
        shared = distributed.shared_files(
            (path, path.parent / LOSSES_NAME), (CHECKPOINT_NAME, LOSSES_NAME), MAX_TOTAL_BYTES
        )
        readable = path if distributed.is_writer() else shared / CHECKPOINT_NAME
    try:
        return distributed.agreed(
            "preparing the run",
            lambda: _prepare(
                config,
                out,
                data,
                path,
                readable,
                overwrite,
                allow_other_data,
                max_data_bytes,
                samples,
                device,
                devices,
                log,
            ),
            _run_fingerprint,
        )
    finally:
        if readable is not None and readable != path:  # the broadcast copy, now in memory
            shutil.rmtree(readable.parent, ignore_errors=True)


def _run_fingerprint(run: Run) -> str:
    """What every process must share: the settings, the words, the starting step."""
    step = run.state.step if run.state else 0
    fields = {"config": run.config.to_dict(), "data": run.dataset.data_hash, "step": step}
    return json.dumps(fields | {"devices": run.mesh.size if run.mesh else 1}, sort_keys=True)


def _prepare(
    config: TrainConfig | Mapping[str, Any] | None,
    out: str | os.PathLike | None,
    data: str | os.PathLike | None,
    path: Path | None,
    readable: Path | None,
    overwrite: bool,
    allow_other_data: bool,
    max_data_bytes: int,
    samples: int,
    device: str,
    devices: int | None,
    log: Log | None,
) -> Run:
    """:func:`prepare` in one process; ``readable`` is where this process reads the checkpoint
    ``path`` (process 0's file, or its broadcast copy)."""
    ckpt = load_checkpoint(readable) if readable is not None else None
    run_config = resolve_config(config, ckpt.config if ckpt else None, str(path))
    if ckpt is not None and run_config.steps < ckpt.step:
        raise ConfigError(
            f"--steps {run_config.steps:,} is below the checkpoint's step {ckpt.step:,} ({path})"
        )
    checks.resolve_dtype(run_config.dtype)
    jax_device = checks.resolve_device(device)
    several = distributed.is_multiprocess()
    if several:  # this process's own device: the others' are not addressable here
        jax_device = jax.local_devices(backend=jax_device.platform)[0]
    n_devices = devices if devices is not None else (jax.device_count() if several else 1)
    mesh = None
    if n_devices != 1 or several:
        mesh = parallel.make_mesh(n_devices, jax_device.platform)
        parallel.check_divisible(run_config.batch_size, n_devices)
    source = data if data is not None or ckpt is None else ckpt.config.get("data")
    dataset = load_dataset(source, run_config.block_size, max_data_bytes)
    if ckpt is not None:  # read again, now expecting this data's vocabulary
        try:
            ckpt = load_checkpoint(readable, expect_vocab=dataset.vocab)
        except CheckpointError as err:
            raise CheckpointError(f"{err} ({dataset.source})") from None
        note = check_same_data(readable, ckpt, dataset, allow_other_data)
        if note:
            _log(log, f"note: {note}")
    needed = memory.run_bytes(run_config, len(dataset.train.y), dataset.vocab.size, samples)
    memory.check_fits(needed, f"this run ({run_config.steps:,} steps, --samples {samples:,})")
    folder = Path(out) if out is not None else (path.parent if path is not None else Path("out"))
    if distributed.is_writer():  # only process 0 writes, so only its folder is checked
        _refuse_overwrite(folder, path, overwrite)
        folder = prepare_out_dir(folder)
    state = None
    if ckpt is not None:
        state = TrainState(
            Params(*(jnp.asarray(p) for p in ckpt.params)),
            ckpt.step,
            jax.random.wrap_key_data(jnp.asarray(ckpt.rng_key)),
            load_losses(readable.parent, ckpt.step),
        )
    return Run(run_config, dataset, folder, jax_device, mesh, state, path)


# ----------------------------------------------------------------------------------- files


def data_source(dataset: Dataset) -> str:
    """What to record as the run's data: an absolute path, or ``names-package``."""
    if dataset.source in (DEFAULT_SOURCE, STDIN_NAME):
        return STDIN if dataset.source == STDIN_NAME else DEFAULT_SOURCE
    return str(Path(dataset.source).resolve())


def to_numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, tree)


def save_run(
    out: Path, state: TrainState, stats: BNStats | None, dataset: Dataset, config: TrainConfig
) -> None:
    """The checkpoint (parameters, calibrated statistics if known, vocab, config, step, RNG key)
    and the loss history beside it; the losses first, so a checkpoint never lacks its history.
    With several processes only process 0 writes (the others hold the same values)."""
    if not distributed.is_writer():
        return
    run_config = config.to_dict() | {"data": data_source(dataset)}
    ckpt = Checkpoint(
        to_numpy(state.params),
        None if stats is None else to_numpy(stats),
        dataset.vocab,
        run_config,
        state.step,
        np.asarray(jax.random.key_data(state.batch_key)),
        dataset.data_hash or None,
    )
    write_atomic(out / LOSSES_NAME, lambda f: np.save(f, state.losses))
    save_checkpoint(out / CHECKPOINT_NAME, ckpt)


def save_then_calibrate(
    out: Path, state: TrainState, dataset: Dataset, config: TrainConfig
) -> BNStats | None:
    """Save the trained state first (it is safe from here on), then calibrate BatchNorm and
    rewrite the checkpoint with the statistics (process 0 only: the others go on to the next
    chunk and wait there)."""
    if not distributed.is_writer():
        return None
    if distributed.is_multiprocess():
        state = host_state(state)
    save_run(out, state, None, dataset, config)
    stats = _finishing_step(
        "calibrating BatchNorm", out, state.step, calibrate, state.params, dataset.train.x
    )
    save_run(out, state, stats, dataset, config)
    return stats


def host_state(state: TrainState) -> TrainState:
    """``state`` with its parameters in host memory: after training each process finishes on
    its own device, and a process cannot compute on arrays that span the others'."""
    return state._replace(params=Params(*(np.asarray(p) for p in state.params)))


def load_losses(folder: Path, step: int) -> np.ndarray:
    """The first ``step`` losses saved in ``folder``, or NaN (a gap in loss.png) if missing."""
    try:  # a stranger's file too: read within the bounds a history of ``step`` losses needs
        losses = read_npy(folder / LOSSES_NAME, max_bytes=8 * step + 4096)
    except CheckpointError:
        losses = np.zeros(0, np.float32)
    if losses.ndim != 1 or len(losses) < step or losses.dtype.kind != "f":
        return np.full(step, np.nan, np.float32)
    keep = np.float64 if losses.dtype == np.float64 else np.float32  # a float64 run's stay so
    return losses[:step].astype(keep)


def _finishing_step(what: str, out: Path, step: int, fn: Callable, *args: Any) -> Any:
    """``fn(*args)``; any failure becomes one line that says the trained checkpoint is safe."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # memory, a plotting backend, a bad file: the run itself is saved
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not isinstance(err, JaxninjaError):
            reason = f"{type(err).__name__}: {reason}"
        raise TrainingError(
            f"{what} failed ({reason}); the trained checkpoint (step {step:,}) is safe in "
            f"{out / CHECKPOINT_NAME}"
        ) from None


# ----------------------------------------------------------------------------------- the run


def run_training(
    config: TrainConfig | Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    *,
    data: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    allow_other_data: bool = False,
    max_data_bytes: int = MAX_DATA_BYTES,
    samples: int = 20,
    check_every: int = 0,
    checkpoint_every: int = 0,
    device: str = "auto",
    devices: int | None = None,
    progress: bool | Callable[[ChunkReport], None] = True,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[], None] | None = None,
    on_saved: Callable[[Path], None] | None = None,
    log: Log | None = print,
) -> RunResult:
    """Train into the folder ``out`` (default ``out``, or the resumed run's folder) and finish.

    ``config``: a :class:`TrainConfig`, or the settings to change (fresh: from the defaults;
    with ``resume``, a checkpoint file or folder: from the checkpoint's, where only ``steps``
    may differ). ``data`` defaults to the checkpoint's recorded data on resume, else
    ``$JAXNINJA_NAMES``, else the default data set (``"-"``: standard input, at most
    ``max_data_bytes``); resuming on words other than the checkpoint's (by their hash) needs
    ``allow_other_data``. An ``out`` that holds a run needs ``resume`` or ``overwrite=True``.
    ``should_stop()`` is asked after every chunk; when it turns true (e.g. a signal number) the
    state is saved and the result says ``interrupted`` and ``stop_code``. With several processes
    (:mod:`jaxninja.devices.distributed` initialised) the batch is split over every device of every
    process, the processes agree on stopping after every chunk (the largest ``should_stop()``
    value of all), only process 0 writes files and logs, and a collective that fails because
    another process left is a :class:`DistributedError` naming the checkpoint kept.
    ``on_start()`` is called when everything has been checked and training begins;
    ``on_saved(checkpoint)`` once the trained state is safe on disk, before finishing; ``log``
    gets each status line.
    """
    checks.check_steps(check_every, "--check-every")
    checks.check_steps(checkpoint_every, "--checkpoint-every")
    several = distributed.is_multiprocess()
    if several and not distributed.is_writer():  # process 0 speaks for the run
        log, progress = None, (False if progress is True else progress)
    agree = json.dumps(
        {
            "config": dict(config._asdict() if isinstance(config, TrainConfig) else config or {}),
            "resume": resume is not None, "samples": samples, "check_every": check_every,
            "checkpoint_every": checkpoint_every, "devices": devices,
            "max_data_bytes": max_data_bytes, "allow_other_data": allow_other_data,
        },
        sort_keys=True, default=str,
    )  # fmt: skip
    run = prepare(
        config, out, data=data, resume=resume, overwrite=overwrite,
        allow_other_data=allow_other_data, max_data_bytes=max_data_bytes, samples=samples,
        device=device, devices=devices, log=log, agree=agree,
    )  # fmt: skip
    config, dataset, folder = run.config, run.dataset, run.out
    start = run.state.step if run.state else 0
    if on_start is not None:
        on_start()
    _log(log, _start_line(run, start))
    bar = Progress(start, config.steps) if progress is True else None
    on_chunk = bar if bar is not None else (progress or None)
    saved = [start if start > 0 else None]
    stop_code = [0]

    def save(state: TrainState) -> None:
        save_then_calibrate(folder, state, dataset, config)
        saved[0] = state.step

    def stop() -> int:  # several processes: all stop at the same chunk, or none does
        local = should_stop() if should_stop is not None else 0
        stop_code[0] = distributed.agree_stop(int(local or 0)) if several else int(local or 0)
        return stop_code[0]

    def kept() -> str:
        if not distributed.is_writer():
            return "process 0 keeps the last good checkpoint"
        return _kept_checkpoint(saved[0], start, folder, run.resume)

    warm = None  # the finishing programs, compiled beside the loop's start (one device only)
    if run.mesh is None and not several:
        committed = None if device == "auto" else run.device
        warm = warmup.start(config, dataset, samples, committed)
        on_chunk = warm.stopping_first(on_chunk)
    try:
        with distributed.lost_contact(kept) if several else contextlib.nullcontext():
            result = train_loop(
                config,
                dataset,
                state=run.state,
                check_every=check_every,
                checkpoint_every=checkpoint_every,
                save=save,
                should_stop=stop if (several or should_stop is not None) else None,
                on_chunk=on_chunk,
                device=None if device == "auto" else run.device,  # None: uncommitted
                mesh=run.mesh,
            )
    except NonFiniteLoss as err:
        kept_now = _kept_checkpoint(err.last_saved, start, folder, run.resume)
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
    save_run(folder, result.state, None, dataset, config)  # safe from here on
    if on_saved is not None:
        on_saved(folder / CHECKPOINT_NAME)
    return _finish(run, result, samples, log)


def _start_line(run: Run, start: int) -> str:
    ds, device = run.dataset, run.device
    where = f"{device.platform} ({device}{f' x {run.mesh.size}' if run.mesh else ''})"
    if jax.process_count() > 1:
        where = f"{device.platform} ({run.mesh.size} devices of {jax.process_count()} processes)"
    return (
        f"training on {ds.source} ({len(ds.train.y):,} examples, vocabulary {ds.vocab.size}) "
        f"for steps {start:,}..{run.config.steps:,} on {where}, {run.config.dtype}"
    )


def _kept_checkpoint(last_saved: int | None, start: int, out: Path, resume: Path | None) -> str:
    """The end of the non-finite message: which good checkpoint is left, if any."""
    if last_saved is None:
        return "no checkpoint was saved (--checkpoint-every N keeps one every N steps)"
    path = resume if resume is not None and last_saved == start else out / CHECKPOINT_NAME
    return f"the last good checkpoint (step {last_saved:,}) is kept in {path}"


def _finish(run: Run, result: TrainResult, num_samples: int, log: Log | None) -> RunResult:
    """Calibrate (rewriting the checkpoint with the statistics), evaluate, sample, then write
    summary.json and loss.png; the checkpoint is already safe when this starts."""
    config, dataset, out, state = run.config, run.dataset, run.out, result.state
    step = state.step
    stats = _finishing_step(
        "calibrating BatchNorm", out, step, calibrate, state.params, dataset.train.x
    )
    save_run(out, state, stats, dataset, config)
    losses = _finishing_step("evaluating", out, step, split_losses, state.params, stats, dataset)
    names = []
    if num_samples:
        args = (state.params, stats, dataset.vocab, num_samples, sample_key(config.seed))
        names = _finishing_step("sampling", out, step, sample_names, *args)
    result = result._replace(bn_stats=stats, split_losses=losses)
    summary = _summary(run, result)
    summary["samples"] = names
    if distributed.is_writer():  # the others computed the same, to reach the exit together
        text = json.dumps(summary, indent=2) + "\n"
        write = lambda f: f.write(text.encode("utf-8"))  # noqa: E731
        _finishing_step("writing the summary", out, step, write_atomic, out / SUMMARY_NAME, write)
        plot_args = (state, out / PLOT_NAME, config.steps)
        _finishing_step("plotting the loss", out, step, _plot, *plot_args)
    _log(log, _result_line(result))
    for name in names:
        _log(log, name)
    _log(log, f"wrote {out / CHECKPOINT_NAME}, {out / SUMMARY_NAME}, {out / PLOT_NAME}")
    return RunResult(out, config, result, summary, names)


def _summary(run: Run, result: TrainResult) -> dict[str, Any]:
    device = run.device
    return {
        "config": run.config.to_dict() | {"data": data_source(run.dataset)},
        "n_params": n_params(result.params),
        "losses": result.split_losses,
        "steps_per_s": result.steps_per_s,
        "compile_and_first_chunk_s": result.compile_s,
        "wall_s": result.wall_s,
        "device": {
            "platform": device.platform,
            "kind": device.device_kind,
            "name": str(device),
            "host": platform.processor() or platform.machine(),
        },
        "jax": jax.__version__,
        "samples": [],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


TIMING_FIELDS = ("steps_per_s", "compile_and_first_chunk_s", "wall_s", "finished")
"""summary.json's fields that differ between two identical runs (they time the machine)."""


def _plot(state: TrainState, path: Path, steps: int) -> None:
    from jaxninja.training.plot_loss import plot_loss  # matplotlib only when a run finishes

    plot_loss(state.losses, path, title=f"{n_params(state.params):,} parameters, {steps:,} steps")


def _result_line(result: TrainResult) -> str:
    losses = result.split_losses or {}
    rate = "steps/s n/a: every chunk compiled"
    if result.steps_per_s is not None:
        rate = f"{result.steps_per_s:,.0f} steps/s"
    return (
        f"train {losses['train']:.4f}  val {losses['val']:.4f}  test {losses['test']:.4f}  "
        f"({rate}; {result.wall_s:.1f} s incl. {result.compile_s:.1f} s compiling)"
    )


def _log(log: Log | None, line: str) -> None:
    if log is not None:
        log(line)
