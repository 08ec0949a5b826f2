"""Why a float32 row is over its bound: rounding, a mistake, or correct math unstable in float32.

The usual answer to "my gradient differs by 1e-7" is "switch to double". The check does it
itself: every float32 row over its bound (a measured error, not a shape or a missing row) is
recomputed with the same inputs cast to float64 (the same parameters and batch, the same backward,
the same reference), and the two errors, each in eps·scale of its own dtype, decide:

- **mistake**: the float64 error is not smaller in eps·scale than the float32 one by anything
  like float64's extra precision. Rounding errors scale with eps (float64's is 2^-29 of
  float32's), so in eps·scale of its dtype a rounding difference stays about the same size; a
  wrong formula's difference stays the same *relative* size, 2^29 (5e8) times more eps·scale
  in float64. The line is at :data:`AGREES` times the float32 error (or
  :data:`jaxninja.numerics.ROUNDING`, whichever is larger): ~2^4 above rounding's ratio, ~2^25
  below a mistake's. "still differs in float64 by 3e-2 relative".
- **rounding**: the float64 error is within that line: "agrees in float64 to 0.4 eps·scale".
- **unstable in float32**: it agrees in float64, but the float32 error grows with the inputs'
  magnitude. That is how it is told apart from rounding: the float32 check is run again with the
  floating inputs multiplied by 2 and 4 (:data:`SCALES`; the batch's floating values, or the
  parameters when the batch has none). A stable computation's error is relative: in eps·scale it
  stays about the same whatever the magnitude; a cancellation (``exp(x - logsumexp(x))``,
  ``E[x²] - E[x]²``) loses digits in proportion to it. Unstable when the error grows at each
  scale, by at least :data:`GROWTH` from 1 to 4, to more than :data:`NOISE` eps·scale (below
  that, a few eps·scale wander by 2-4x from one input to the next: measured on the notebook's
  tanh line, 0.6 -> 2.6 eps·scale at 1x -> 4x, which is not a trend).

A float32 row over its bound stays a failing row: the bound is the contract, and the
explanation says what the difference is, not that it is allowed. Rows against ``fd`` are
already against float64 and are not recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxninja import numerics
from jaxninja.errors import JaxninjaError
from jaxninja.gradcheck.compare import Row
from jaxninja.gradcheck.taps import is_float

AGREES = 16.0
"""The float64 error may be this many times the float32 one (each in eps·scale of its own
dtype) and still be rounding: the same computation at the same inputs rounds to within a few
times the same eps·scale, while a mistake's ratio is ~2^29 (module docstring)."""

SCALES = (2.0, 4.0)
"""The inputs' magnitudes, beyond 1, at which a float32 row that agrees in float64 is rerun."""

GROWTH = 2.5
"""From scale 1 to 4 a cancellation's error grows about 4x (digits lost in proportion to the
magnitude; measured 3.8x on a softmax taken through its logsumexp at logits ~1000, the maxima of
rounding errors vary from input to input); a stable computation's eps·scale does not grow (it is
relative). 2.5 sits between."""

NOISE = 16.0
"""Errors up to this many eps·scale are what two correct summation orders differ by (the
lecture's measured max against torch is 14.6): no growth is read into them."""

ROUNDING, MISTAKE, UNSTABLE = "rounding", "mistake", "unstable in float32"


def no_fd(against: tuple[str, ...]) -> tuple[str, ...]:
    """The references a rerun needs: fd rows are against float64 already."""
    return tuple(a for a in against if a != "fd")


def scale_inputs(params: Any, batch: Any, scale: float) -> tuple[Any, Any]:
    """``(params, batch)`` with the batch's floating leaves multiplied by ``scale``, or the
    parameters' when the batch has none (the lecture's batch is character indices)."""
    if scale == 1.0:
        return params, batch

    def times(tree: Any) -> Any:
        return jax.tree.map(lambda x: x * scale if is_float(x) else x, tree)

    if any(is_float(x) for x in jax.tree.leaves(batch)):
        return params, times(batch)
    return times(params), batch


def candidates(rows: list[Row], dtype: str) -> list[int]:
    """Indices of the rows to explain: float32, over the bound with a measured error."""
    if dtype != "float32":
        return []
    return [
        i
        for i, r in enumerate(rows)
        if not r.ok and not r.reason and r.against != "fd" and np.isfinite(r.eps_scale)
    ]


def verdict(e32: float, e64: float, growth: tuple[float, ...]) -> str:
    """Which of the three (module docstring) the errors fit; ``growth``: the float32 errors at
    scale 1 then :data:`SCALES` (empty when not measured)."""
    if not e64 <= max(numerics.ROUNDING, AGREES * e32):
        return MISTAKE
    if len(growth) == 1 + len(SCALES) and _grows(growth):
        return UNSTABLE
    return ROUNDING


def _grows(errors: tuple[float, ...]) -> bool:
    steps = all(b > a for a, b in zip(errors, errors[1:], strict=False))
    return steps and errors[-1] >= GROWTH * errors[0] and errors[-1] > NOISE


def describe(row: Row, e64: float, growth: tuple[float, ...]) -> str:
    """The row's diagnosis with the explanation."""
    kind = verdict(row.eps_scale, e64, growth)
    if kind == MISTAKE:
        relative = e64 * numerics.machine_eps(np.float64)
        still = f"still differs in float64 by {relative:.2g} relative (a mistake)"
        if row.diagnosis.startswith("agrees to"):  # float32's rounding guess, now refuted
            return f"looks like rounding in float32 ({row.eps_scale:.3g} eps·scale), but {still}"
        return f"{row.diagnosis}; {still}"
    said = f"agrees in float64 to {e64:.2g} eps·scale"
    if kind == ROUNDING:
        return f"rounding: {said} (float32 {row.eps_scale:.3g})"
    shown = ", ".join(f"{e:.3g}" for e in growth)
    return (
        f"correct but unstable in float32: {said}, but the float32 error grows with the "
        f"inputs' magnitude ({shown} eps·scale at 1x, " + ", ".join(f"{s:g}x" for s in SCALES) + ")"
    )


Rerun = Callable[[str, float], list[Row]]


def explain_rows(rows: list[Row], dtype: str, rerun: Rerun) -> list[Row]:
    """``rows`` with every float32 row over its bound explained (its diagnosis, ``eps_scale64``,
    ``verdict`` and ``growth`` set). ``rerun(dtype, scale)``: the same check's rows at the same
    inputs in ``dtype``, floating inputs times ``scale``. Nothing is rerun when no row needs
    it."""
    todo = candidates(rows, dtype)
    if not todo:
        return rows
    at64 = _by_key(rerun("float64", 1.0))
    agreeing = [i for i in todo if _key(rows[i]) in at64 and _agrees(rows[i], at64)]
    scaled = {}
    if agreeing:
        try:
            scaled = {s: _by_key(rerun("float32", s)) for s in SCALES}
        except JaxninjaError:  # e.g. the loss overflows at 4x: no growth measured
            scaled = {}
    out = list(rows)
    for i in todo:
        row, other = rows[i], at64.get(_key(rows[i]))
        if other is None or not np.isfinite(other.eps_scale):
            continue
        growth: tuple[float, ...] = ()
        if scaled and all(_key(row) in s for s in scaled.values()):
            growth = (row.eps_scale, *(scaled[s][_key(row)].eps_scale for s in SCALES))
        e64 = other.eps_scale
        out[i] = row._replace(
            diagnosis=describe(row, e64, growth),
            eps_scale64=e64,
            verdict=verdict(row.eps_scale, e64, growth),
            growth=growth,
        )
    return out


def _agrees(row: Row, at64: dict[tuple[str, str], Row]) -> bool:
    return verdict(row.eps_scale, at64[_key(row)].eps_scale, ()) != MISTAKE


def _key(row: Row) -> tuple[str, str]:
    return row.name, row.against


def _by_key(rows: list[Row]) -> dict[tuple[str, str], Row]:
    return {_key(r): r for r in rows}


__all__ = ["GROWTH", "NOISE", "SCALES", "describe", "explain_rows", "scale_inputs", "verdict"]
