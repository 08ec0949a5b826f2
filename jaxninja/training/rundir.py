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
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import checks
from jaxninja.config import RUN_FIELDS, TrainConfig
from jaxninja.config import name as config_name
from jaxninja.data import RECORDED_DEFAULT, STDIN, STDIN_NAME, Builtin, Dataset
from jaxninja.devices import distributed
from jaxninja.errors import CheckpointError, ConfigError, JaxninjaError, ModelError, TrainingError
from jaxninja.gradcheck.taps import param_names
from jaxninja.io.atomic import write_atomic
from jaxninja.io.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from jaxninja.io.safe_npz import read_npy
from jaxninja.lecture.model import Params
from jaxninja.models.trainable import Trainable, count_params, restore_tree, trainable_of
from jaxninja.training.evaluate import sample_key, sample_names, split_losses
from jaxninja.training.loop import TrainResult, TrainState

LOSSES_NAME = "losses.npy"  # every step's loss, saved next to the checkpoint for loss.png
VAL_NAME = "val_losses.npy"  # (points, 2): step and validation loss, loss.png's second curve
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
        raise ConfigError(f"{where}: stored configuration is invalid: ", err) from None
    for field in RUN_FIELDS:
        if field in given and given[field] != getattr(stored, field):
            raise ConfigError(
                config_name(field),
                f" {given[field]} does not match the checkpoint {where} "
                f"({getattr(stored, field)}); drop it to resume",
            )
    return stored.replace(steps=given.get("steps", stored.steps))


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
    out: Path,
    state: TrainState,
    stats: Any,
    dataset: Dataset,
    config: TrainConfig,
    model: Trainable | None = None,
) -> None:
    """The checkpoint (parameters, calibrated statistics if known, vocab, config, step, RNG key;
    a model file's: its training statistics and which model it is) and the loss history beside
    it; the losses first, so a checkpoint never lacks its history. With several processes only
    process 0 writes (the others hold the same values)."""
    if not distributed.is_writer():
        return
    record = None if model is None else model.recorded
    ckpt = Checkpoint(
        to_numpy(state.params),
        None if stats is None or record is not None else to_numpy(stats),
        dataset.vocab,
        recorded_config(config, dataset),
        state.step,
        np.asarray(jax.random.key_data(state.batch_key)),
        dataset.data_hash or None,
        None if state.stats is None else to_numpy(state.stats),
        record,
    )
    write_atomic(out / LOSSES_NAME, lambda f: np.save(f, state.losses))
    if state.val_curve is not None:
        write_atomic(out / VAL_NAME, lambda f: np.save(f, state.val_curve))
    save_checkpoint(out / CHECKPOINT_NAME, ckpt)


def save_then_calibrate(
    out: Path,
    state: TrainState,
    dataset: Dataset,
    config: TrainConfig,
    model: Trainable | None = None,
) -> Any:
    """Save the trained state first (it is safe from here on), then compute the model's
    evaluation statistics (the lecture: calibrate BatchNorm) and rewrite the checkpoint with
    them (process 0 only: the others go on to the next chunk and wait there). A model file's
    checkpoint keeps its training statistics instead, from which evaluation derives its own."""
    model = trainable_of(model)
    if not distributed.is_writer():
        return None
    if distributed.is_multiprocess():
        state = host_state(state)
    save_run(out, state, None, dataset, config, model)
    if model.is_file or model.finish is None:
        return None
    stats = finishing_step(
        "calibrating BatchNorm", out, state.step, model.finish, state.params, state.stats,
        dataset.train.x,
    )  # fmt: skip
    save_run(out, state, stats, dataset, config, model)
    return stats


def host_state(state: TrainState) -> TrainState:
    """``state`` with its parameters in host memory: after training each process finishes on
    its own device, and a process cannot compute on arrays that span the others'."""
    return state._replace(params=to_numpy(state.params), stats=to_numpy(state.stats))


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


def resumed_state(
    ckpt: Checkpoint,
    folder: Path,
    model: Trainable | None = None,
    config: TrainConfig | None = None,
) -> TrainState:
    """The training state a checkpoint (read from ``folder``) continues from, with its losses.
    A model file's checkpoint is read into the model's own structure (its ``init`` at the
    run's ``config`` gives the names and shapes)."""
    params, stats = model_arrays(ckpt, model, config, str(folder))
    return TrainState(
        params,
        ckpt.step,
        jax.random.wrap_key_data(jnp.asarray(ckpt.rng_key)),
        load_losses(folder, ckpt.step),
        stats,
        load_val_curve(folder, ckpt.step),
    )


MAX_VAL_POINTS = 100_000  # a validation point per 1,000 steps of MAX_STEP is 10**6 / 10: ample


def load_val_curve(folder: Path, step: int) -> np.ndarray:
    """The validation points saved in ``folder`` up to ``step`` (none if missing or not a
    (points, 2) float array: the curve is a picture, never a reason to refuse a resume)."""
    try:
        curve = read_npy(folder / VAL_NAME, max_bytes=16 * MAX_VAL_POINTS + 4096)
    except CheckpointError:
        return np.zeros((0, 2))
    if curve.ndim != 2 or curve.shape[1] != 2 or curve.dtype.kind != "f":
        return np.zeros((0, 2))
    curve = curve.astype(np.float64)
    return curve[np.isfinite(curve).all(1) & (curve[:, 0] <= step)]


def model_arrays(
    ckpt: Checkpoint, model: Trainable | None, config: TrainConfig | None, where: str
) -> tuple[Any, Any]:
    """A checkpoint's parameters and training statistics as jax arrays in the model's
    structure: the lecture's ``Params``; a model file's pytree, checked name by name and shape
    by shape against a fresh ``start`` of the model."""
    if ckpt.model is None:
        return Params(*(jnp.asarray(p) for p in ckpt.params)), None
    model = trainable_of(model)
    config = config or TrainConfig.from_dict(ckpt.config)
    params0, stats0, _ = model.start(config, ckpt.vocab.size)
    params = restore_tree(params0, ckpt.params, "parameters", where)
    stats = None if stats0 is None else restore_tree(stats0, ckpt.stats or {}, "statistics", where)
    return params, stats


def check_same_model(
    path: Path | str | None,
    ckpt: Checkpoint,
    model: Trainable,
    allow_change: bool = False,
    log: Log | None = None,
) -> None:
    """The checkpoint was trained with ``model``: the lecture's with the lecture's, a model file
    with a file whose source has the recorded SHA-256. A changed source is refused unless
    ``allow_change`` (``--allow-model-change``), then noted. A mismatch is a
    :class:`ModelError` (exit 2: the flags name the wrong model)."""
    if ckpt.model is None and model.is_file:
        raise ModelError(
            f"{path}: was trained with the lecture's model, not ", checks.MODEL,
            f" {model.name}; drop ", checks.MODEL,
        )  # fmt: skip
    if ckpt.model is None:
        return
    recorded = ckpt.model
    if not model.is_file:
        raise ModelError(
            f"{path}: was trained with ", checks.MODEL,
            f" {recorded['model']} (file {recorded['file']}); pass ", checks.MODEL,
            " with that file",
        )  # fmt: skip
    sha = model.recorded["sha256"]
    if sha == recorded["sha256"]:
        return
    text = (
        f"{path}: was trained with {recorded['file']} of SHA-256 {recorded['sha256'][:12]}, but "
        f"--model {model.name} has {sha[:12]}"
    )
    if not allow_change:
        raise ModelError(
            f"{path}: was trained with {recorded['file']} of SHA-256 "
            f"{recorded['sha256'][:12]}, but ", checks.MODEL, f" {model.name} has {sha[:12]}; "
            "pass ", checks.ALLOW_MODEL_CHANGE, " to use it anyway",
        )  # fmt: skip
    say(log, f"note: {text} (--allow-model-change)")


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
    out: Path,
    state: TrainState,
    config: TrainConfig,
    dataset: Dataset,
    num_samples: int,
    model: Trainable | None = None,
) -> tuple[Any, dict[str, float] | None, list[str]]:
    """A trained (and saved) run's finishing: the model's evaluation statistics (the lecture:
    calibrate BatchNorm, and rewrite the checkpoint with them), the splits' losses, and
    ``num_samples`` sampled names; each step's failure is one line naming the safe checkpoint.
    A model without ``logits`` has no split losses or names (None, [])."""
    model, step = trainable_of(model), state.step
    leaves = jax.tree.leaves(state.params)
    diverged(out, step, "parameters", dict(zip(param_names(state.params), leaves, strict=True)))
    stats = None
    if model.finish is not None:
        stats = finishing_step(
            "calibrating BatchNorm" if not model.is_file else "computing the statistics",
            out, step, model.finish, state.params, state.stats, dataset.train.x,
        )  # fmt: skip
        save_run(out, state, stats, dataset, config, model)
    if model.logits is None:
        return stats, None, []
    losses = finishing_step(
        "evaluating", out, step, split_losses, state.params, stats, dataset, model.logits
    )
    diverged(out, step, "split losses", losses)
    names: list[str] = []
    if num_samples:
        args = (state.params, stats, dataset.vocab, num_samples, sample_key(config.seed))
        more = {"logits": model.logits, "block_size": config.block_size}
        names = finishing_step("sampling", out, step, partial(sample_names, **more), *args)
    return stats, losses, names


def diverged(out: Path, step: int, what: str, values: Mapping[str, Any]) -> None:
    """A run whose training losses stayed finite can still end with NaN or inf parameters or
    split losses (``--lr 1e15``: losses ~1e16, BatchNorm's variance overflows): refused in one
    line naming them, instead of a summary of NaN and empty names with exit 0."""
    bad = [name for name, v in values.items() if not np.isfinite(np.asarray(v)).all()]
    if bad:
        raise TrainingError(
            f"the run diverged: non-finite {what} ({', '.join(bad[:8])}) at step {step:,}; "
            "nothing to evaluate or sample (a smaller ", checks.LR,
            f"?); its checkpoint is in {out / CHECKPOINT_NAME}",
        )  # fmt: skip


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
    config: TrainConfig,
    dataset: Dataset,
    device: jax.Device,
    result: TrainResult,
    model: Trainable | None = None,
) -> dict[str, Any]:
    """One run's ``summary.json`` (``samples`` left empty for the caller to fill); a model
    file's run records which (its spec, file name and source hash)."""
    record = None if model is None else model.recorded
    return {
        "config": recorded_config(config, dataset),
        "model": record,
        "n_params": count_params(result.params),
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
