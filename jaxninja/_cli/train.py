"""``jaxninja train``: flags -> the settings given -> :func:`jaxninja.run_training` -> exit status.

jaxninja train --out runs/lecture                  # the lecture's Exercise 4 (200,000 steps)
jaxninja train --steps 2000 --n-hidden 64 --out runs/quick --checkpoint-every 500
jaxninja train --resume runs/quick --steps 4000    # continue, bit for bit, to step 4,000
jaxninja train --seeds 8 --out runs/seeds          # 8 seeds in one program: mean +- std
jaxninja train --sweep lr=0.05,0.1,0.2 --seeds 4 --out runs/lr --steps 20000
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jaxninja.checks import check_int
from jaxninja.config import FLAGS, TrainConfig
from jaxninja.data import MAX_DATA_BYTES
from jaxninja.errors import ConfigError
from jaxninja.training import plan

from .flags import add_config_flags, add_distributed_flags, given, join_processes
from .hostdevices import ensure_host_devices
from .signals import Interrupts

if TYPE_CHECKING:
    from jaxninja.training.run import RunOptions

CONFIG_FIELDS = ("steps", "batch_size", "n_embd", "n_hidden", "block_size", "lr")
CONFIG_FIELDS += ("lr_decay_step", "lr_decay", "seed", "dtype")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Run settings default to None so --resume can tell a given flag from the default."""
    p.add_argument(
        "--data",
        help="word list, one word a line (default: the checkpoint's on --resume, else "
        "$JAXNINJA_NAMES, else US census first names from the names package)",
    )
    notes = {"steps": " (on --resume: the checkpoint's, or more to train longer)"}
    add_config_flags(p, TrainConfig, CONFIG_FIELDS, none_defaults=True, notes=notes)
    p.add_argument(
        "--device",
        default="auto",
        help="cpu or gpu (default: JAX's default device); an error says so when JAX sees no GPU",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help="split each batch over N devices, BatchNorm synchronised (on CPU: "
        "XLA_FLAGS=--xla_force_host_platform_device_count=N) (default 1; several processes: "
        "every device of every process)",
    )
    p.add_argument(
        "--out",
        help="directory for checkpoint.npz, summary.json, loss.png "
        "(default: out, or the --resume directory)",
    )
    p.add_argument(
        "--max-data-bytes",
        type=int,
        default=MAX_DATA_BYTES,
        metavar="N",
        help=f"read at most N bytes of words (default {MAX_DATA_BYTES:,}; '--data -' reads stdin)",
    )
    p.add_argument(
        "--model",
        metavar="FILE[:NAME]",
        help="train your own model: a Python file defining init, batch, forward (with taps) and "
        "backward, whose backward gives the gradients (README, 'Train your own model'); "
        "FILE:NAME takes them from the file's object NAME (e.g. wavenet.py:part5). The file "
        "runs as Python with your permissions. Default: the lecture's MLP",
    )
    p.add_argument(
        "--allow-model-change",
        action="store_true",
        help="--resume with a --model file whose source differs from the one the checkpoint "
        "records (by SHA-256; refused without it)",
    )
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="--resume on words other than the checkpoint was trained on (refused without it)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (without it such an --out is refused)",
    )
    p.add_argument(
        "--samples", type=int, default=20, help="names to sample at the end (default 20)"
    )
    p.add_argument(
        "--check-every",
        type=int,
        default=0,
        metavar="N",
        help="every N steps compare the manual gradients with jax.grad and stop if they "
        "disagree (default 0: never)",
    )
    p.add_argument(
        "--val-every",
        type=int,
        metavar="N",
        help="the validation loss (calibrated as evaluate does) every N steps and at the end, "
        "drawn in loss.png and kept in val_losses.npy (default: 10 points, on multiples of "
        "1,000 steps; 0: none). Every kind of run: one device or several, one process or "
        "several, and each run of --seeds/--sweep",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="save a checkpoint every N steps (default 0: only at the end or on Ctrl-C/SIGTERM)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run saved in DIR (its checkpoint.npz), or every run of a multi-run "
        "DIR (its runs.json); the result is bit-identical to a run that never stopped",
    )
    p.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="train K seeds (--seed, --seed + 1, ...) in one program, each into --out/run-NN/, "
        "and report mean, std, min and max over them (default: one run)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="also train every value of NAME, one of lr, lr-decay, lr-decay-step (the settings "
        "that keep the arrays' shapes); repeat for a grid; combines with --seeds as a product",
    )
    p.add_argument(
        "--group",
        type=int,
        metavar="G",
        help="with --seeds/--sweep: runs vmapped together on a device (default 1 on CPU, each "
        "run bit for bit the run alone; all of a device's runs on a GPU)",
    )
    add_distributed_flags(p)


def run(args: argparse.Namespace, interrupts: Interrupts | None = None) -> int:
    """Train into --out; on a signal, save at the next chunk and exit 130 / 143."""
    interrupts = interrupts or Interrupts()
    settings = given(args, CONFIG_FIELDS)
    sizing = [FLAGS[n].flag for n in ("n_embd", "n_hidden") if n in settings]
    if args.model is not None and sizing:
        raise ConfigError(
            f"{', '.join(sizing)}: only for the lecture's model, not with --model (your FILE's "
            "init sizes its model)"
        )
    if args.resume is None and args.model is None:
        TrainConfig(**settings)  # refuse bad flags before jax is imported
    sweeps = [plan.parse_sweep(text) for text in args.sweep]
    plan.check_sweeps(sweeps)
    if args.seeds is not None:
        plan.check_seeds(args.seeds, settings.get("seed", TrainConfig.seed))
    many = args.seeds is not None or bool(sweeps)
    many = many or (args.resume is not None and plan.holds_runs(args.resume))
    if many:
        return _run_many(args, settings, sweeps, interrupts)
    if args.group is not None:
        raise ConfigError("--group applies to --seeds / --sweep only")
    join_processes(args)  # several processes: connect before jax starts its backend
    from jaxninja.training.run import run_training

    try:
        options = _run_options(args, interrupts)._replace(
            on_start=interrupts.stop_phase,
            on_saved=_on_saved(interrupts, "the trained checkpoint is"),
        )
        result = run_training(
            settings,
            args.out,
            options,
            allow_other_data=args.allow_other_data,
            devices=args.devices,
        )
    finally:
        interrupts.exit_phase()
    if not result.interrupted:
        return 0
    code = interrupts.caught[0] if interrupts.caught else result.stop_code  # agreed elsewhere
    name = signal.Signals(code).name
    from jaxninja.devices.distributed import is_writer

    if not is_writer():  # several processes: process 0 saved
        step = result.result.state.step
        sys.stderr.write(f"jaxninja: {name} at step {step:,}: stopped with process 0 (it saved)\n")
        return 128 + code
    saved = f"checkpoint saved to {result.checkpoint}"
    _say_stopped(name, result.result.state.step, saved, result.out)
    return interrupts.status or 128 + code


def _say_stopped(name: str, step: int, saved: str, out: Path) -> None:
    """The one line a stopped run ends with: the signal, the step, what was saved, how to go on."""
    sys.stderr.write(
        f"jaxninja: {name} at step {step:,}: {saved}; continue with: jaxninja train --resume "
        f"{out}\n"
    )


def _run_options(args: argparse.Namespace, interrupts: Interrupts) -> RunOptions:
    """The :class:`jaxninja.training.run.RunOptions` one run and many runs share, from the
    flags (imported here: jax starts with it)."""
    from jaxninja.training.run import RunOptions

    return RunOptions(
        data=args.data,
        resume=args.resume,
        overwrite=args.overwrite,
        max_data_bytes=args.max_data_bytes,
        samples=args.samples,
        check_every=args.check_every,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        should_stop=interrupts.should_stop,
        log=lambda line: print(line, flush=True),
        model=args.model,
        allow_model_change=args.allow_model_change,
        val_every=args.val_every,
    )


def _on_saved(interrupts: Interrupts, what: str):
    """Once the trained state is safe, a signal ends finishing at once, saying where it is."""

    def on_saved(path: Path) -> None:
        interrupts.exit_phase(f"interrupted while finishing; {what} safe in {path}")
        if interrupts.caught:
            name = signal.Signals(interrupts.caught[0]).name
            from .signals import leave

            leave(f"{name}: stopped; {what} safe in {path}", interrupts.status)

    return on_saved


def _run_many(
    args: argparse.Namespace, settings: dict, sweeps: list, interrupts: Interrupts
) -> int:
    """--seeds / --sweep (or --resume of a multi-run folder): every run in one program."""
    if any(getattr(args, f) is not None for f in ("coordinator", "num_processes", "process_id")):
        raise ConfigError(
            "--seeds/--sweep cannot run over several processes yet (--coordinator, "
            "--num-processes, --process-id): the two are designed together later"
        )
    if args.devices not in (None, 1):
        raise ConfigError(
            "--devices (one run's batch over devices) cannot be combined with --seeds/--sweep "
            "yet; the runs are spread over the devices already"
        )
    if args.group is not None:
        check_int("--group", args.group, 1, "runs vmapped together")
    if args.device in ("auto", "cpu"):
        ensure_host_devices()  # before jax: one CPU device per core for the runs' axis
    from jaxninja.training.many import run_many

    interrupts.stop_phase()
    try:
        options = _run_options(args, interrupts)._replace(
            on_saved=_on_saved(interrupts, "every run's trained checkpoint is")
        )
        result = run_many(
            settings, args.out, options, seeds=args.seeds, sweeps=sweeps, group=args.group
        )
    finally:
        interrupts.exit_phase()
    if not result.interrupted:
        return 0
    name = signal.Signals(interrupts.caught[0]).name
    saved = f"every run's checkpoint saved under {result.out}"
    _say_stopped(name, result.result.states[0].step, saved, result.out)
    return interrupts.status
