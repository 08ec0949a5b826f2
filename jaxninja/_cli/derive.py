"""``jaxninja derive``: print the sympy derivations of every backward formula, step by step.

For a person checking the math: each layer's forward in index notation (symbolic batch size n),
the element-wise derivative, the collapsed sums, the substituted identities, the closed form the
generated kernel computes, the proof results, and the time it all took. Needs the ``derive``
extra (sympy); the rest of jaxninja never imports sympy.

``jaxninja derive --layer FILE [--out KERNEL.py]`` checks a layer you state instead (see
``derivations/userlayer.py`` and ``examples/``): your claimed gradient proved or refuted with a
counterexample, the derived kernel generated and verified against ``jax.vjp``.
"""

from __future__ import annotations

import argparse
import sys
import time

from jaxninja.errors import ConfigError, JaxninjaError

INSTALL_HINT = "install the derive extra: pip install 'jaxninja[derive]'"
MAX_ERROR_CHARS = 400  # an error line longer than this is cut in the middle


def capped(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` on one line of at most about ``limit`` characters: a statement's constant or
    line of 100 KB is echoed by its start and end, with the count of what was cut."""
    message = " ".join(message.split("\n"))
    if len(message) <= limit:
        return message
    head, tail = message[: limit - 100], message[-60:]
    return f"{head} ... ({len(message) - len(head) - len(tail):,} characters cut) ... {tail}"


def _progress(line: str) -> None:
    """A long derivation's progress, on stderr (stdout holds the report)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``derive`` subcommand's flags."""
    parser.add_argument(
        "--brief",
        action="store_true",
        help="print only closed forms and proof results, not every step",
    )
    parser.add_argument(
        "--layer",
        metavar="FILE",
        help="check your own layer instead: a Python file defining layer = Layer(...) "
        "(see examples/); derive, prove or refute its claims, generate and verify its kernel",
    )
    parser.add_argument(
        "--out",
        metavar="KERNEL.py",
        help="with --layer: write the generated JAX kernel here, only once it passed its "
        "verification (a new file, or one an earlier derive wrote: never another file)",
    )
    parser.add_argument(
        "--allow-unsafe",
        action="store_true",
        help="with --layer: write a kernel that is numerically unsafe in float32 at large "
        "inputs (reported either way) and exit 0",
    )


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that need --layer."""
    for flag, value in (("--out", args.out), ("--allow-unsafe", args.allow_unsafe)):
        if value not in (None, False):
            raise ConfigError(f"{flag} needs --layer FILE")


def _load():
    """Import sympy and the derivations lazily, with a one-line error when sympy is missing."""
    try:
        import sympy  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"sympy is not installed; {INSTALL_HINT}") from err
    import derivations

    return derivations


def run_layer(args: argparse.Namespace) -> int:
    """``--layer FILE``: the user's layer checked end to end, ending with one verdict line;
    status 0 when every claim is proved and the kernel verified (and written, with --out),
    1 otherwise (nothing written then)."""
    start, cpu = time.perf_counter(), time.process_time()
    derivations = _load()
    try:
        result = derivations.derive_file(
            args.layer, args.out, args.allow_unsafe, progress=_progress
        )
    except JaxninjaError as err:  # one line, and a short one: a statement may echo a long text
        raise type(err)(capped(str(err))) from None
    print(result.body, end="")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"total, imports included: {wall:.1f} s wall, {cpu:.1f} s CPU")
    print(result.verdict)  # the last line, always
    return result.status


def run(args: argparse.Namespace) -> int:
    """Derive, prove and brute-force everything, print the report; 1 if anything fails."""
    if getattr(args, "layer", None):
        return run_layer(args)
    _check_flags(args)
    start, cpu = time.perf_counter(), time.process_time()
    text, results = _load().lecture_report(steps=not args.brief)
    print(text, end="")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"total, sympy import included: {wall:.1f} s wall, {cpu:.1f} s CPU")
    failures = results.failures()
    for failure in failures:
        print(f"not proved: {failure}")
    claims = sum(len(c.verdicts) + len(c.chains) for c in results.layers)
    if failures:
        print(f"NOT PROVED: {len(failures)} problem(s) above, of {claims} claims (exit 1)")
    else:
        print(f"PROVED {claims}/{claims} (the lecture's claims and chains) (exit 0)")
    return 1 if failures else 0
