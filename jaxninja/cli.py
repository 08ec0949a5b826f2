"""The ``jaxninja`` command: thin argparse glue over library functions that tests call directly.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only wires them up and turns a :class:`JaxninjaError` into one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from jaxninja.errors import JaxninjaError

DESCRIPTION = (
    "makemore Part 4 (Becoming a Backprop Ninja) in JAX: a hand-written backward pass, derived "
    "by sympy, checked against jax.grad and torch, and trained."
)

# name -> (module, one-line help). Modules are imported only when needed.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("jaxninja.check", "cross-check every intermediate gradient vs jax.grad and torch"),
    "derive": ("jaxninja.derive", "print the sympy derivations, or check your own layer (--layer)"),
    "train": ("jaxninja.train_cli", "train the MLP with the manual backward (Exercise 4)"),
    "sample": ("jaxninja.train_cli", "sample names from a checkpoint"),
    "evaluate": ("jaxninja.train_cli", "train/val/test losses of a checkpoint"),
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``jaxninja: error: ...``, status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"jaxninja: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its flags, so one
    subcommand's dependencies (torch, sympy) never burden another."""
    parser = OneLineParser(prog="jaxninja", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            adder = getattr(mod, f"add_{name}_arguments", None) or mod.add_arguments
            adder(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in SUBCOMMANDS else None).parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    runner = getattr(module, f"run_{args.command}", None) or module.run
    try:
        return runner(args)
    except JaxninjaError as err:
        return _fail(str(err), err.exit_code)
    except BrokenPipeError:  # e.g. `jaxninja sample ... | head -1`: the reader left, fine
        _silence_stdout()
        return 0
    except KeyboardInterrupt:  # outside training, which saves and exits 130 on its own
        return _fail("interrupted", 130)
    except OSError as err:  # disk full, permissions: name the file, no traceback
        where = f"{err.filename}: " if err.filename else ""
        return _fail(f"{where}{err.strerror or err}", 1)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"jaxninja: error: {message}\n")
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
