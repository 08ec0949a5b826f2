"""``jaxninja train``: flags -> the settings given -> :func:`jaxninja.run_training` -> exit status.

jaxninja train --out runs/lecture                  # the lecture's Exercise 4 (200,000 steps)
jaxninja train --steps 2000 --n-hidden 64 --out runs/quick --checkpoint-every 500
jaxninja train --resume runs/quick --steps 4000    # continue, bit for bit, to step 4,000
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from jaxninja.config import TrainConfig
from jaxninja.data import MAX_DATA_BYTES

from .flags import add_config_flags, add_distributed_flags, given, join_processes
from .signals import Interrupts

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
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="save a checkpoint every N steps (default 0: only at the end or on Ctrl-C/SIGTERM)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run saved in DIR (its checkpoint.npz); the result is bit-identical "
        "to a run that never stopped",
    )
    add_distributed_flags(p)


def run(args: argparse.Namespace, interrupts: Interrupts | None = None) -> int:
    """Train into --out; on a signal, save at the next chunk and exit 130 / 143."""
    interrupts = interrupts or Interrupts()
    settings = given(args, CONFIG_FIELDS)
    if args.resume is None:
        TrainConfig(**settings)  # refuse bad flags before jax is imported
    join_processes(args)  # several processes: connect before jax starts its backend
    from jaxninja.run import run_training

    def on_saved(path: Path) -> None:  # the run is safe: a signal now ends finishing at once
        interrupts.exit_phase(
            f"interrupted while finishing; the trained checkpoint is safe in {path}"
        )
        if interrupts.caught:
            name = signal.Signals(interrupts.caught[0]).name
            from .signals import leave

            leave(f"{name}: stopped; the trained checkpoint is safe in {path}", interrupts.status)

    try:
        result = run_training(
            settings,
            args.out,
            data=args.data,
            resume=args.resume,
            overwrite=args.overwrite,
            allow_other_data=args.allow_other_data,
            max_data_bytes=args.max_data_bytes,
            samples=args.samples,
            check_every=args.check_every,
            checkpoint_every=args.checkpoint_every,
            device=args.device,
            devices=args.devices,
            should_stop=interrupts.should_stop,
            on_start=interrupts.stop_phase,
            on_saved=on_saved,
            log=lambda line: print(line, flush=True),
        )
    finally:
        interrupts.exit_phase()
    if not result.interrupted:
        return 0
    code = interrupts.caught[0] if interrupts.caught else result.stop_code  # agreed elsewhere
    name = signal.Signals(code).name
    from jaxninja.distributed import is_writer

    if not is_writer():  # several processes: process 0 saved
        step = result.result.state.step
        sys.stderr.write(f"jaxninja: {name} at step {step:,}: stopped with process 0 (it saved)\n")
        return 128 + code
    sys.stderr.write(
        f"jaxninja: {name} at step {result.result.state.step:,}: checkpoint saved to "
        f"{result.checkpoint}; continue with: jaxninja train --resume {result.out}\n"
    )
    return interrupts.status or 128 + code
