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
the usual reductions, matmuls and gathers), so that your model finds them proved: the
primitive, its statement for the derivation engine (the forward in index notation, one symbolic
size per axis `n0, n1, ...`), the claimed gradient (the array form of the line the generator
emits), and the engine's verdict, PROVED meaning every claim is proved for all sizes. A rule
instance not in this table, or not PROVED, makes the generator refuse (`--allow-unproved PRIM`
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
- `reduce_max`'s gradient (the max's position, ties split evenly as jax does) is NOT STATABLE:
  the engine states a max only as a shift the output does not depend on.

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
        claims = "<br>".join(_cell(f"d{k} = {v}") for k, v in sorted(s.get("claims", {}).items()))
        rows.append(f"| {e['prim']} | {forward} | {claims or '-'} | {e['verdict']} | {key} |")
    return INTRO + "\n".join(rows) + "\n"
