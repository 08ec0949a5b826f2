"""The ``jaxninja`` command: flags -> config -> one library call -> print.

Each command is one entry of :data:`COMMANDS`: its module (imported only when that command
runs, so one command's dependencies never burden another), its one-line help, and the names of
the functions that add its flags and run it. :func:`main` installs the signal policy on its
first line, before anything imports jax, and turns a :class:`JaxninjaError` into one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import NamedTuple

from jaxninja.errors import JaxninjaError

from . import signals

DESCRIPTION = (
    "makemore Part 4 (Becoming a Backprop Ninja) in JAX: a hand-written backward pass, derived "
    "by sympy, checked against jax.grad and torch, and trained."
)


class Command(NamedTuple):
    """A subcommand: where it lives and what it does."""

    module: str
    help: str
    add: str = "add_arguments"  # function(parser) adding its flags
    run: str = "run"  # function(args) -> exit status


COMMANDS: dict[str, Command] = {
    "check": Command(
        "jaxninja._cli.check", "cross-check every intermediate gradient vs jax.grad and torch"
    ),
    "derive": Command(
        "jaxninja._cli.derive", "print the sympy derivations, or check your own layer (--layer)"
    ),
    "backward": Command(
        "jaxninja._cli.backward", "write your model's backward, every rule proved, checked first"
    ),
    "train": Command("jaxninja._cli.train", "train the MLP with the manual backward (Exercise 4)"),
    "launch": Command(
        "jaxninja._cli.launch", "run `train` or `check` as several processes on this machine"
    ),
    "sample": Command(
        "jaxninja._cli.use", "sample names from a checkpoint", "add_sample_arguments", "run_sample"
    ),
    "evaluate": Command(
        "jaxninja._cli.use",
        "train/val/test losses of a checkpoint",
        "add_evaluate_arguments",
        "run_evaluate",
    ),
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``jaxninja: error: ...``, status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"jaxninja: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its flags."""
    parser = OneLineParser(prog="jaxninja", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if name == command:
            getattr(importlib.import_module(cmd.module), cmd.add)(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    with signals.installed() as interrupts:
        return _leave_failed_run(_main_status(argv, interrupts))


def _main_status(argv: list[str] | None, interrupts: signals.Interrupts) -> int:
    """:func:`_main`, every failure turned into one line and a status."""
    try:
        return _main(sys.argv[1:] if argv is None else argv, interrupts)
    except JaxninjaError as err:
        return _fail(err.render(cli=True), err.exit_code)  # settings named by their flags
    except BrokenPipeError:  # e.g. `jaxninja sample ... | head -1`: the reader left, fine
        _silence_stdout()
        return 0
    except KeyboardInterrupt:  # raised by a caller's own handler: still one line
        return _fail("interrupted", 130)
    except OSError as err:  # disk full, permissions: name the file, no traceback
        where = f"{err.filename}: " if err.filename else ""
        return _fail(f"{where}{err.strerror or err}", 1)
    except Exception:  # a bug: its traceback, and with other processes, leave them at once
        if not _joined():
            raise
        traceback.print_exc()
        return 1


def _main(argv: list[str], interrupts: signals.Interrupts) -> int:
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    cmd = COMMANDS[args.command]
    runner = getattr(importlib.import_module(cmd.module), cmd.run)
    if args.command == "train":
        return runner(args, interrupts)
    return runner(args)


def _leave_failed_run(status: int) -> int:
    """A process of a run over several processes that failed leaves now: the runtime's exit
    barrier would wait for the others (which are leaving too, or gone) and then abort with a
    page of C++ log instead of this process's one line and status."""
    if status not in (0, 130, 143) and _joined():
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """End the process at once with ``status``, its output flushed first (no teardown)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left: nothing more to say
            pass
    os._exit(status)


# commands that own nothing once main returns: no file open, no thread, no other process (train
# has written and closed its checkpoint, summary and plot, and joined its threads, by then)
FAST_EXIT = frozenset({"backward", "check", "derive", "sample", "evaluate", "train"})


def console() -> None:
    """The ``jaxninja`` console script: :func:`main`; then, for a command of :data:`FAST_EXIT`
    run in a single process, the process ends at once (``os._exit``, its output flushed)
    instead of tearing down the interpreter, jax's caches and torch: about 1 s of a 10 s
    ``check --model`` and about 0.5 s of every ``train``, which have nothing left to do by then."""
    argv = sys.argv[1:]
    code = main(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in FAST_EXIT and not _joined():
        _exit_now(code)
    sys.exit(code)


def _joined() -> bool:
    """Whether this process is part of a run over several processes (jax already imported)."""
    jax = sys.modules.get("jax")
    return jax is not None and jax.distributed.is_initialized()


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"jaxninja: error: {message}\n")
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
