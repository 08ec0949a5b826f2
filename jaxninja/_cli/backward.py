"""``jaxninja backward --model FILE [--out FILE]``: flags -> :func:`checked_backward` -> the
generated backward (printed, or written to ``--out`` only if every row of its check table is
within contract); exit 1 and the table when a row fails, 2 for a primitive without a rule or a
rule not proved, or a --fuse segment refused (bad, or its closed form not PROVED)."""

from __future__ import annotations

import argparse
import sys

from jaxninja.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``jaxninja backward``."""
    p.add_argument(
        "--model",
        metavar="FILE",
        required=True,
        help="a model file (init, batch, forward; its backward is not read); FILE runs as Python",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write a model file with the generated backward here (a new file, or one jaxninja "
        "backward wrote); default: print the backward",
    )
    p.add_argument("--seed", type=int, default=42, help="the check's seed (default: 42)")
    p.add_argument(
        "--allow-unproved",
        metavar="PRIMS",
        default="",
        help="comma-separated primitives whose rule may be used without a proof (e.g. max, "
        "whose tie rule against a broadcast operand is not proved); named in the backward's "
        "docstring",
    )

    p.add_argument(
        "--fuse",
        metavar="A:B",
        action="append",
        default=[],
        help="the forward from tap A to tap B (or the loss) as one closed form the derivation "
        "engine derives and proves (e.g. logits:loss, hprebn:hpreact); repeatable; imports "
        "sympy. The taps inside the segment get no gradient rows",
    )


def run(args: argparse.Namespace) -> int:
    """Generate, check, print or write."""
    from jaxninja.backward.write import check_out, checked_backward, model_file, write
    from jaxninja.gradcheck.model_check import format_model_table, summary_lines

    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}: must be at least 0")
    out = check_out(args.out, args.model) if args.out is not None else None
    allow = frozenset(filter(None, (s.strip() for s in args.allow_unproved.split(","))))
    checked = checked_backward(args.model, seed=args.seed, allow_unproved=allow, fuse=args.fuse)
    if not checked.check.ok:
        print(format_model_table(checked.check))
        print("the generated backward breaks the contract: nothing written", file=sys.stderr)
        return 1
    summary = "; ".join(summary_lines(checked.check.rows))
    proved = len({u.key for u in checked.source.uses})
    note = f"{proved} rule instances, {len(checked.source.unproved)} unproved by request"
    for fused in checked.source.fused:
        note += f"; fused {fused}"
    if out is None:
        print(checked.source.code, end="")
        print(f"# {note}; {summary}", file=sys.stderr)
        return 0
    write(model_file(checked.source.code, args.model, out, checked.source.untapped), out)
    print(f"wrote {out}: {note}; {summary}")
    return 0
