"""Many runs into one folder: ``jaxninja train --seeds K --sweep lr=...`` is one call of
:func:`run_many`, the multi-run twin of :func:`jaxninja.run_training`::

    done = jaxninja.run_many({"steps": 20_000}, "runs/seeds", seeds=8)
    print(done.summary["over_runs"]["val"])               # mean, std, min, max over the 8 runs
    jaxninja.run_many({"steps": 40_000}, None, resume="runs/seeds")  # continue all 8, bit for bit

The folder holds ``runs.json`` (the plan: base settings, seeds, sweep, each run's settings),
one ``run-NN/`` per run in the single run's format (``checkpoint.npz``, ``losses.npy``,
``summary.json``), and at the end ``summary.json`` (the table: each run's split losses; over
runs their mean, std, min and max) and ``loss.png`` (every run's curve, the mean, its band).
Saving and the finishing steps are :mod:`jaxninja.training.rundir`'s, run by run, and the
folder rules :mod:`jaxninja.io.runfolder`'s; the options are one run's
(:class:`jaxninja.training.run.RunOptions`), the model every run trains among them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxninja import checks
from jaxninja.config import DEFAULT_OUT, TrainConfig
from jaxninja.data import Dataset, load_dataset, recorded
from jaxninja.errors import CheckpointError, ConfigError, ModelError, RunNonFinite, TrainingError
from jaxninja.io import runfolder
from jaxninja.io.atomic import write_atomic
from jaxninja.io.checkpoint import CHECKPOINT_NAME, load_checkpoint, refuse_diverged
from jaxninja.lecture.step import learning_rate
from jaxninja.models.trainable import Trainable, count_params, defaults_config, trainable_of
from jaxninja.training import memory, warmup
from jaxninja.training.loop import TrainResult, TrainState
from jaxninja.training.plan import (
    PLAN_NAME,
    SPLITS,
    SWEEPABLE,
    parse_sweep,
    plan_runs,
    run_name,
    split_statistics,
    varying,
)
from jaxninja.training.progress import reporter
from jaxninja.training.run import RunOptions, val_curve_of
from jaxninja.training.rundir import (
    PLOT_NAME,
    SUMMARY_NAME,
    Log,
    check_same_model,
    finish_state,
    finished_at,
    finishing_step,
    kept_checkpoint,
    machine,
    recorded_config,
    resolve_config,
    resumed_state,
    run_summary,
    save_run,
    save_then_calibrate,
    say,
    write_summary,
)
from jaxninja.training.stacked import Layout, RunsResult, make_layout, train_runs

Sweeps = Sequence[tuple[str, tuple[Any, ...]]]
PLAN_VERSION = 1


class Many(NamedTuple):
    """A multi-run job ready to start (everything refusable already refused)."""

    base: TrainConfig
    configs: list[TrainConfig]
    seeds: int
    sweeps: tuple[tuple[str, tuple[Any, ...]], ...]
    dataset: Dataset
    out: Path
    device: jax.Device
    layout: Layout
    states: list[TrainState] | None  # None: from the seeds
    resume: Path | None  # the multi-run folder resumed from
    model: Trainable  # what every run trains

    def folder(self, i: int) -> Path:
        return self.out / run_name(i, len(self.configs))

    def resumed(self, i: int) -> Path | None:
        if self.resume is None:
            return None
        return self.resume / run_name(i, len(self.configs)) / CHECKPOINT_NAME


class ManyResult(NamedTuple):
    """What :func:`run_many` did; ``summary`` is None when it was interrupted."""

    out: Path
    configs: list[TrainConfig]
    result: RunsResult
    summary: dict[str, Any] | None

    @property
    def interrupted(self) -> bool:
        return self.result.interrupted


# ----------------------------------------------------------------------------------- the plan


def read_plan(folder: Path) -> dict[str, Any]:
    """``runs.json`` of a multi-run folder, its shape checked (its settings are checked again as
    configurations: the file is input, not trusted)."""
    path = folder / PLAN_NAME
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            checks.RESUME, f" {folder}: no {PLAN_NAME} (not a multi-run folder)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})".splitlines()[0]) from None
    ok = isinstance(plan, dict) and plan.get("version") == PLAN_VERSION
    ok = ok and isinstance(plan.get("base"), dict) and isinstance(plan.get("seeds"), int)
    ok = ok and isinstance(plan.get("sweep"), list)
    if not ok:
        raise CheckpointError(f"{path}: not a version-{PLAN_VERSION} plan of runs")
    return plan


def _stored_sweeps(plan: dict[str, Any], path: Path) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    try:
        sweeps = tuple((str(name), tuple(values)) for name, values in plan["sweep"])
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: its sweep is not a list of [name, values]") from None
    for name, values in sweeps:  # the same checks as the flag's
        parse_sweep(f"{name}={','.join(map(str, values))}")
    return sweeps


def write_plan(job: Many) -> None:
    plan = {
        "version": PLAN_VERSION,
        "base": recorded_config(job.base, job.dataset),
        "model": job.model.recorded,
        "seeds": job.seeds,
        "sweep": [[name, list(values)] for name, values in job.sweeps],
        "runs": [
            {"name": job.folder(i).name, "config": c.to_dict()} for i, c in enumerate(job.configs)
        ],
    }
    text = json.dumps(plan, indent=2) + "\n"
    write_atomic(job.out / PLAN_NAME, lambda f: f.write(text.encode("utf-8")))


def prepare_many(
    config: TrainConfig | Mapping[str, Any] | None,
    out: str | os.PathLike | None,
    options: RunOptions,
    scope: contextlib.ExitStack,
    *,
    seeds: int | None = None,
    sweeps: Sweeps = (),
    group: int | None = None,
) -> Many:
    """Everything refusable, refused before training: the plan (fresh, or the folder's with
    only ``steps`` changed), every run's checkpoint on resume, the device, the data, the memory
    of K runs and the folder."""
    options.check()
    model = trainable_of(options.model)
    if model.logits is None:  # the table of runs is their split losses
        raise ModelError(
            f"{model.name}: defines no logits(), so its runs have no split losses to compare; "
            "--seeds/--sweep need it (one run trains without)"
        )
    sweeps = tuple(sweeps)
    folder = Path(options.resume) if options.resume is not None else None
    plan = None
    if folder is None:
        config = defaults_config(model, config)
        base = resolve_config(config, None)
        seeds = 1 if seeds is None else seeds
    else:
        plan = read_plan(folder)
        where = str(folder / PLAN_NAME)
        stored = _stored_sweeps(plan, folder / PLAN_NAME)
        if seeds is not None and seeds != plan["seeds"]:
            raise ConfigError(
                checks.SEEDS,
                f" {seeds} does not match {where} ({plan['seeds']}); drop it to resume",
            )
        if sweeps and sweeps != stored:
            raise ConfigError(checks.SWEEPS, f" does not match {where}; drop it to resume")
        base = resolve_config(config, plan["base"], where)
        seeds, sweeps = plan["seeds"], stored
    configs = plan_runs(base, seeds, sweeps)
    scope.enter_context(checks.dtype_scope(base.dtype))  # the caller holds it while they run
    jax_device = checks.resolve_device(options.device)
    data = options.data
    source = data if data is not None or plan is None else recorded(plan["base"].get("data"))
    dataset = load_dataset(source, base.block_size, options.max_data_bytes)
    states = None
    if folder is not None:
        states = _resumed_states(folder, configs, dataset, model, options)
    needed = memory.run_bytes(
        base, len(dataset.train.y), dataset.vocab.size, options.samples, runs=len(configs)
    )
    memory.check_fits(needed, f"these {len(configs):,} runs ({base.steps:,} steps each)")
    layout = make_layout(len(configs), jax_device.platform, group=group)
    target = (
        runfolder.given(out)
        if out is not None
        else (folder if folder is not None else Path(DEFAULT_OUT))
    )
    names = [run_name(i, len(configs)) for i in range(len(configs))]
    target = runfolder.claim(target, folder, options.overwrite, scope, names)
    return Many(
        base, configs, seeds, sweeps, dataset, target, jax_device, layout, states, folder, model
    )


def _resumed_states(
    folder: Path,
    configs: list[TrainConfig],
    dataset: Dataset,
    model: Trainable,
    options: RunOptions,
) -> list[TrainState]:
    """Every run's checkpoint, checked against the plan and the model; all must stand at the
    same step."""
    states = []
    for i, config in enumerate(configs):
        path = folder / run_name(i, len(configs)) / CHECKPOINT_NAME
        try:
            ckpt = load_checkpoint(path, expect_vocab=dataset.vocab)
        except CheckpointError as err:
            raise CheckpointError(err, f" ({dataset.source})") from None
        refuse_diverged(ckpt, path)
        stored = resolve_config({"steps": config.steps}, ckpt.config, str(path))
        if stored != config:
            raise ConfigError(f"{path}: its settings differ from {PLAN_NAME}'s run {i}")
        if config.steps < ckpt.step:
            raise ConfigError(
                checks.STEPS,
                f" {config.steps:,} is below the checkpoint's step {ckpt.step:,} ({path})",
            )
        check_same_model(
            path, ckpt, model, options.allow_model_change, options.log if i == 0 else None
        )
        states.append(resumed_state(ckpt, path.parent, model, config))
    steps = sorted({s.step for s in states})
    if len(steps) > 1:
        raise ConfigError(
            checks.RESUME,
            f" {folder}: its runs stopped at different steps ({steps[0]:,} .. "
            f"{steps[-1]:,}); runs of one program move together",
        )
    return states


# ----------------------------------------------------------------------------------- the job


def run_many(
    config: TrainConfig | Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    *,
    seeds: int | None = None,
    sweeps: Sweeps = (),
    group: int | None = None,
    **keywords: Any,
) -> ManyResult:
    """Train ``seeds`` seeds x the ``sweeps`` points of ``config`` into ``out`` in one program,
    then finish every run; ``options`` / ``keywords`` are :func:`jaxninja.run_training`'s
    (:class:`jaxninja.training.run.RunOptions`), plus ``seeds``, ``sweeps`` (``parse_sweep``
    pairs) and ``group`` (runs vmapped together on a device: see
    :func:`jaxninja.training.stacked.make_layout`)."""
    options = RunOptions.given(options, keywords, "run_many")
    with contextlib.ExitStack() as scope:  # float64: x64 on until the runs are finished
        job = prepare_many(config, out, options, scope, seeds=seeds, sweeps=sweeps, group=group)
        return _train_many(job, options)


def _train_many(job: Many, options: RunOptions) -> ManyResult:
    """Train the prepared runs and finish them (:func:`run_many` after :func:`prepare_many`)."""
    write_plan(job)
    start = job.states[0].step if job.states else 0
    if options.on_start is not None:
        options.on_start()
    say(options.log, _start_line(job, start))
    bar, on_chunk = reporter(options.progress, start, job.base.steps)

    def save(states: list[TrainState]) -> None:
        for i, (state, c) in enumerate(zip(states, job.configs, strict=True)):
            save_then_calibrate(job.folder(i), state, job.dataset, c, job.model)

    # the finishing programs, compiled beside the loop's start (they run on the default device)
    warm = warmup.start(job.base, job.dataset, options.samples, None) if job.model.warm else None
    if warm is not None:
        on_chunk = warm.stopping_first(on_chunk)
    try:
        result = train_runs(
            job.configs,
            job.dataset,
            states=job.states,
            check_every=options.check_every,
            checkpoint_every=options.checkpoint_every,
            save=save,
            should_stop=options.should_stop,
            on_chunk=on_chunk,
            layout=job.layout,
            model=job.model,
            **val_curve_of(job.model, job.dataset, job.base.steps, options.val_every),
        )
    except RunNonFinite as err:
        kept = kept_checkpoint(err.last_saved, start, job.folder(err.run), job.resumed(err.run))
        lr = float(learning_rate(job.configs[err.run].schedule, err.step))
        raise TrainingError(f"{job.folder(err.run).name}: {err} (lr {lr:g}); {kept}") from None
    finally:
        if bar is not None:
            bar.close()
        if warm is not None:
            warm.join()  # done long before, unless the runs were short
    if result.interrupted:
        return ManyResult(job.out, job.configs, result, None)
    for i, (state, c) in enumerate(zip(result.states, job.configs, strict=True)):
        save_run(job.folder(i), state, None, job.dataset, c, job.model)  # every run safe now
    if options.on_saved is not None:
        options.on_saved(job.out)
    return _finish(job, result, options.samples, options.log)


def _start_line(job: Many, start: int) -> str:
    ds = job.dataset
    return (
        f"training {job.layout.describe(len(job.configs))} on {ds.source} "
        f"({len(ds.train.y):,} examples), steps {start:,}..{job.base.steps:,}, {job.base.dtype}"
    )


def _finish(job: Many, result: RunsResult, num_samples: int, log: Log | None) -> ManyResult:
    """Each run finished as a single run is (calibrate, checkpoint, split losses, samples, its
    summary.json), then the folder's summary.json with the table and statistics, and loss.png."""
    per_run = []
    for i, (state, config) in enumerate(zip(result.states, job.configs, strict=True)):
        per_run.append(_finish_one(job, i, state, config, result, num_samples))
    summary = _table(job, per_run, result)
    step = result.states[0].step
    write_summary(job.out, summary, step)
    finishing_step("plotting the losses", job.out, step, plot_many, job, result)
    for line in table_lines(summary):
        say(log, line)
    say(
        log, f"wrote {job.out / SUMMARY_NAME}, {job.out / PLOT_NAME} and {len(per_run)} run folders"
    )
    return ManyResult(job.out, job.configs, result, summary)


def _finish_one(
    job: Many, i: int, state: TrainState, config: TrainConfig, result: RunsResult, samples: int
) -> dict[str, Any]:
    """Run ``i`` finished as a single run is, into its own folder; its row of the table."""
    out = job.folder(i)
    stats, losses, names = finish_state(out, state, config, job.dataset, samples, job.model)
    one = TrainResult(
        state, False, result.steps_per_s, result.compile_s, result.wall_s, stats, losses
    )
    summary = run_summary(config, job.dataset, job.device, one, job.model)
    summary["samples"] = names
    write_summary(out, summary, state.step)
    return {
        "name": out.name,
        "settings": {f: getattr(config, f) for f in ("seed", *SWEEPABLE)},
        "losses": losses,
    }


def _table(job: Many, per_run: list[dict[str, Any]], result: RunsResult) -> dict[str, Any]:
    """The folder's summary: each run's losses and the statistics computed from them."""
    losses = [r["losses"] for r in per_run]
    by_setting = []
    if job.sweeps:
        for p in range(len(per_run) // job.seeds):
            group = per_run[p * job.seeds : (p + 1) * job.seeds]
            by_setting.append(
                {
                    "settings": {name: group[0]["settings"][name] for name, _ in job.sweeps},
                    "runs": [r["name"] for r in group],
                    "over_seeds": split_statistics([r["losses"] for r in group]),
                }
            )
    return {
        "config": recorded_config(job.base, job.dataset),
        "model": job.model.recorded,
        "seeds": job.seeds,
        "sweep": {name: list(values) for name, values in job.sweeps},
        "varying": list(varying(job.configs)),
        "runs": per_run,
        "over_runs": split_statistics(losses),
        "by_setting": by_setting,
        "n_params": count_params(result.states[0].params),
        "layout": {
            "devices": job.layout.devices,
            "group": job.layout.group,
            "padded_runs": job.layout.padded,
        },
        "steps_per_s": result.steps_per_s,
        "run_steps_per_s": result.run_steps_per_s,
        "compile_and_first_chunk_s": result.compile_s,
        "wall_s": result.wall_s,
        "device": machine(job.device),
        "jax": jax.__version__,
        "finished": finished_at(),
    }


def table_lines(summary: dict[str, Any]) -> list[str]:
    """The table as text: one line per run, then mean ± std and min .. max over runs."""
    shown = summary["varying"] or ["seed"]
    head = "  ".join(f"{f:>10}" for f in shown)
    lines = [f"{'run':8}{head}  {'train':>7}  {'val':>7}  {'test':>7}"]
    for r in summary["runs"]:
        cells = "  ".join(_cell(r["settings"][f]) for f in shown)
        loss = "  ".join(f"{r['losses'][s]:7.4f}" for s in SPLITS)
        lines.append(f"{r['name']:8}{cells}  {loss}")
    lines += _stat_lines("over all runs", summary["over_runs"])
    for point in summary["by_setting"]:
        where = ", ".join(f"{k} {v:g}" for k, v in point["settings"].items())
        lines += _stat_lines(where, point["over_seeds"])
    rate = summary["run_steps_per_s"]
    rate_text = "n/a: every chunk compiled" if rate is None else f"{rate:,.0f} run-steps/s"
    lines.append(f"({rate_text}; {summary['wall_s']:.1f} s incl. "
                 f"{summary['compile_and_first_chunk_s']:.1f} s compiling)")  # fmt: skip
    return lines


def _cell(value: float | int) -> str:
    return f"{value:>10d}" if isinstance(value, int) else f"{value:>10g}"


def _stat_lines(what: str, stats: dict[str, dict[str, Any]]) -> list[str]:
    parts = []
    for split in SPLITS:
        s = stats[split]
        spread = "" if s["std"] is None else f" ± {s['std']:.4f}"
        parts.append(f"{split} {s['mean']:.4f}{spread} [{s['min']:.4f}, {s['max']:.4f}]")
    return [f"{what} (n={stats['val']['n']}; mean ± std [min, max]): " + "; ".join(parts)]


def plot_many(job: Many, result: RunsResult) -> None:
    """The folder's ``loss.png``: every run's curve, the mean, its band (imports matplotlib)."""
    from jaxninja.training.plots import plot_runs

    losses = np.stack([s.losses for s in result.states])
    labels = [job.folder(i).name for i in range(len(job.configs))]
    title = f"{len(labels)} runs, {count_params(result.states[0].params):,} parameters each"
    plot_runs(losses, job.out / PLOT_NAME, labels, title, [s.val_curve for s in result.states])
