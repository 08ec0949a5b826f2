"""A run's folder: its rules, what is saved in it and read back, and its summary.

One run (:mod:`jaxninja.training.run`) and each of many runs (:mod:`jaxninja.training.many`) keep
the same files: ``checkpoint.npz`` (parameters, calibrated BatchNorm statistics, vocabulary,
configuration, step, RNG key), ``losses.npy`` (every step's loss), ``summary.json`` and
``loss.png``. **Nothing is lost**: the trained state is saved *before* anything that could fail
afterwards (calibration, split losses, samples, plot), and each of those names, when it fails,
the checkpoint that is safe (:func:`finishing_step`).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import checks
from jaxninja.config import FLAGS, RUN_FIELDS, TrainConfig
from jaxninja.data import RECORDED_DEFAULT, STDIN, STDIN_NAME, Builtin, Dataset
from jaxninja.devices import distributed
from jaxninja.errors import CheckpointError, ConfigError, JaxninjaError, TrainingError
from jaxninja.io.atomic import write_atomic
from jaxninja.io.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from jaxninja.io.safe_npz import read_npy
from jaxninja.lecture.model import BNStats, Params, n_params
from jaxninja.training import plan
from jaxninja.training.evaluate import calibrate, sample_key, sample_names, split_losses
from jaxninja.training.loop import TrainResult, TrainState

LOSSES_NAME = "losses.npy"  # every step's loss, saved next to the checkpoint for loss.png
SUMMARY_NAME = "summary.json"
PLOT_NAME = "loss.png"
TIMING_FIELDS = ("steps_per_s", "run_steps_per_s", "compile_and_first_chunk_s", "wall_s")
TIMING_FIELDS += ("finished",)
"""summary.json's fields that time the machine (they differ between two identical runs); a single
run's summary has no ``run_steps_per_s``."""

Log = Callable[[str], None]


def say(log: Log | None, line: str) -> None:
    """``log(line)``, unless the caller asked for silence (``log=None``)."""
    if log is not None:
        log(line)


# ----------------------------------------------------------------------------------- settings


def resolve_config(
    given: TrainConfig | Mapping[str, Any] | None, saved: dict[str, Any] | None, where: str = ""
) -> TrainConfig:
    """The run's settings. Fresh: ``given`` (a config, or the fields to change from the
    defaults). Resumed: the checkpoint's ``saved`` settings, where the run-defining fields of
    ``given`` must agree (only ``steps`` may change, and not below the checkpoint's step)."""
    checks.check_type(given, (TrainConfig, Mapping, type(None)), "config", "TrainConfig or dict")
    if isinstance(given, TrainConfig):
        given = given.fields()
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
    return stored.replace(steps=given.get("steps", stored.steps))


def refuse_overwrite(out: Path, resume: Path | None, overwrite: bool) -> None:
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


# ----------------------------------------------------------------------------------- files


def data_source(dataset: Dataset) -> str:
    """What to record as the run's data: an absolute path, or ``names-package``."""
    if isinstance(dataset.source, Builtin) or dataset.source == STDIN_NAME:
        return STDIN if dataset.source == STDIN_NAME else RECORDED_DEFAULT
    return str(Path(dataset.source).resolve())


def recorded_config(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """The settings as a checkpoint, a summary and a plan of runs record them: with the data."""
    return config.to_dict() | {"data": data_source(dataset)}


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
    ckpt = Checkpoint(
        to_numpy(state.params),
        None if stats is None else to_numpy(stats),
        dataset.vocab,
        recorded_config(config, dataset),
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
    stats = finishing_step(
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


def resumed_state(ckpt: Checkpoint, folder: Path) -> TrainState:
    """The training state a checkpoint (read from ``folder``) continues from, with its losses."""
    return TrainState(
        Params(*(jnp.asarray(p) for p in ckpt.params)),
        ckpt.step,
        jax.random.wrap_key_data(jnp.asarray(ckpt.rng_key)),
        load_losses(folder, ckpt.step),
    )


def kept_checkpoint(last_saved: int | None, start: int, out: Path, resume: Path | None) -> str:
    """The end of the non-finite message: which good checkpoint is left, if any."""
    if last_saved is None:
        return "no checkpoint was saved (--checkpoint-every N keeps one every N steps)"
    path = resume if resume is not None and last_saved == start else out / CHECKPOINT_NAME
    return f"the last good checkpoint (step {last_saved:,}) is kept in {path}"


# ----------------------------------------------------------------------------------- finishing


def finishing_step(what: str, out: Path, step: int, fn: Callable, *args: Any) -> Any:
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


def finish_state(
    out: Path, state: TrainState, config: TrainConfig, dataset: Dataset, num_samples: int
) -> tuple[BNStats, dict[str, float], list[str]]:
    """A trained (and saved) run's finishing: calibrate BatchNorm and rewrite the checkpoint
    with the statistics, evaluate the splits, sample ``num_samples`` names; each step's failure
    is one line naming the safe checkpoint."""
    step = state.step
    stats = finishing_step(
        "calibrating BatchNorm", out, step, calibrate, state.params, dataset.train.x
    )
    save_run(out, state, stats, dataset, config)
    losses = finishing_step("evaluating", out, step, split_losses, state.params, stats, dataset)
    names: list[str] = []
    if num_samples:
        args = (state.params, stats, dataset.vocab, num_samples, sample_key(config.seed))
        names = finishing_step("sampling", out, step, sample_names, *args)
    return stats, losses, names


def machine(device: jax.Device) -> dict[str, str]:
    """The device a summary records."""
    return {
        "platform": device.platform,
        "kind": device.device_kind,
        "name": str(device),
        "host": platform.processor() or platform.machine(),
    }


def finished_at() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def run_summary(
    config: TrainConfig, dataset: Dataset, device: jax.Device, result: TrainResult
) -> dict[str, Any]:
    """One run's ``summary.json`` (``samples`` left empty for the caller to fill)."""
    return {
        "config": recorded_config(config, dataset),
        "n_params": n_params(result.params),
        "losses": result.split_losses,
        "steps_per_s": result.steps_per_s,
        "compile_and_first_chunk_s": result.compile_s,
        "wall_s": result.wall_s,
        "device": machine(device),
        "jax": jax.__version__,
        "samples": [],
        "finished": finished_at(),
    }


def write_summary(out: Path, summary: dict[str, Any], step: int) -> None:
    """``out/summary.json``, atomically; a failure names the safe checkpoint."""
    text = json.dumps(summary, indent=2) + "\n"
    write = lambda f: f.write(text.encode("utf-8"))  # noqa: E731
    finishing_step("writing the summary", out, step, write_atomic, out / SUMMARY_NAME, write)
