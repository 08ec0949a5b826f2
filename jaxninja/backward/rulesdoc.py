"""``docs/backward_rules.md``: every rule instance of the shipped table with its verdict
(written by ``python -m jaxninja.backward.prove --write``; a test keeps it in step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "backward_rules.md"

INTRO = """# The backward generator's rules and their proofs

Written by `python -m jaxninja.backward.prove --write` from `jaxninja/backward/proofs.json`; do
not edit. Each row is one rule instance `jaxninja backward` uses for the shipped models (the
lecture's MLP and `examples/models/*.py`) or for the catalogue of common instances
(`jaxninja/backward/catalogue.py`: ranks 1-3, each broadcast axis, constants of either sign,
the usual reductions, slices and joins, matmuls and gathers), so that your model finds them
proved: the primitive, its statement for the derivation engine (the forward in index notation,
one symbolic size per axis `n0, n1, ...`), the claimed gradient (the array form of the line the
generator emits), and the engine's verdict: PROVED, every claim proved for all sizes; CHECKED,
every claim proved or checked exactly at every size of the stated range. A rule instance not in
this table, or neither PROVED nor CHECKED, makes the generator refuse (`--allow-unproved PRIM`
overrides, and the generated docstring says so). The key is the first 16 hex digits of the
SHA-256 of the statement's canonical JSON.

How a rule is stated, where the language needs it:

- broadcasting `out = broadcast(x)` is stated as `out[i0, i1] = x[i1] + e[i0]` (every output
  index must occur on the right; x's Jacobian is the broadcast's);
- a sum to a scalar as `out[k] = e[k] + sum(x, ...)` (a scalar output is a loss to the engine);
- a scalar literal operand as a constant `c` of the same sign (the engine assumes nothing but
  the sign, so one proof covers every constant of that sign);
- `reshape` / `squeeze` / a float cast as the identity on the row-major sequence of elements;
- a gather as `one_hot` (embedding rows, a row's picked column);
- `reduce_max` as a max line of its own, `out[i0] = max(x[i0, i1], i1)` (several indices are
  one max), its gradient written with `x == out[:, None]` (the max's positions) divided by their
  count (a tie split evenly, as jax does); PROVED for every input, ties included. A max of every
  axis (a scalar output, a loss to the engine) is NOT STATABLE;
- `slice` and `concatenate` with the language's shifted reads (a read outside the array is
  zero), each length a size symbol (`S1`, `M1`, `E1`: cut before, kept, cut after; `P0, P1`: the
  parts): a cut start reads `x[i + S]` and its gradient `dout[j - S]`, PROVED; an uncut start
  reads `x[i % N]` (the language infers an index's range from a plain read, and the input is
  longer than the output), which the engine CHECKS exactly at every size up to the stated
  bounds but does not prove: the verdict is CHECKED, with the range, and the generator uses it
  (the check table confirms each use at its own sizes).

| primitive | forward | claims | verdict | key |
|---|---|---|---|---|
"""


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\\\|") + "`"


def render(entries: dict[str, Any]) -> str:
    """The Markdown of ``entries`` (the table), rows sorted by primitive then key."""
    rows = []
    for key, e in sorted(entries.items(), key=lambda kv: (kv[1]["prim"], kv[0])):
        s = e["statement"]
        forward = "<br>".join(_cell(line) for line in s.get("forward", [])) or _cell(str(s))
        claims = "<br>".join(
            _cell(v if v.startswith(f"d{k}[") else f"d{k} = {v}")  # index notation: d{k}[...] =
            for k, v in sorted(s.get("claims", {}).items())
        )
        verdict = e["verdict"]
        if verdict == "CHECKED":
            ranges = sorted({f for f in e["fates"].values() if f.startswith("CHECKED")})
            verdict = "; ".join(ranges)
        rows.append(f"| {e['prim']} | {forward} | {claims or '-'} | {verdict} | {key} |")
    return INTRO + "\n".join(rows) + "\n"
