"""The notebook's ``cmp``, grown up: exact, close, max difference, the error in eps·scale, and
for a failing row the mistake its numbers fit (:mod:`jaxninja.gradcheck.diagnose`).

The metric and every bound live in :mod:`jaxninja.numerics`. A row whose true gradient is zero by
symmetry (``dlogit_maxes``, ``db1``) has no scale of its own; it borrows the scale of the row its
sum comes from (``norm_logits``, ``hprebn``). A gradient whose shape or dtype differs from its
reference's is a failing row with that reason (never a silent broadcast, never a traceback).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxninja import numerics
from jaxninja.gradcheck.diagnose import diagnose

ZERO_BY_SYMMETRY = {"logit_maxes": "norm_logits", "b1": "hprebn"}
"""Rows whose exact gradient is 0, and the upstream row whose scale they are measured at."""


class Row(NamedTuple):
    """One line of the table: ``name`` compared with the reference ``against``."""

    name: str
    shape: tuple[int, ...]
    against: str
    exact: bool
    close: bool
    maxdiff: float
    eps_scale: float  # maxdiff / (eps * scale), see jaxninja.numerics
    bound: float  # the contract: eps_scale must be <= bound (0 means bit-exact)
    reason: str = ""  # why the row could not be compared (shape, dtype, missing): it fails
    diagnosis: str = (
        ""  # for a failing row: the mistake its numbers fit (jaxninja.gradcheck.diagnose)
    )
    # a float32 row over its bound, recomputed in float64 (jaxninja.gradcheck.explain):
    eps_scale64: float = float("nan")  # its error in float64, in float64's eps·scale
    verdict: str = ""  # "rounding", "mistake" or "unstable in float32"
    growth: tuple[float, ...] = ()  # float32 errors at the inputs times 1, 2, 4
    mode: str = ""  # "eager" or "jit": how the backwards ran (check --jit both shows both)

    @property
    def ok(self) -> bool:
        return not self.reason and numerics.within(self.eps_scale, self.bound, self.exact)

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "against": self.against,
            "mode": self.mode,
            "exact": self.exact,
            "close": self.close,
            "maxdiff": _finite(self.maxdiff),
            "eps_scale": _finite(self.eps_scale),
            "bound": self.bound,
            "ok": self.ok,
            "reason": self.reason,
            "diagnosis": self.diagnosis,
            "eps_scale_float64": _finite(self.eps_scale64) if self.verdict else None,
            "verdict": self.verdict,
            "growth": [_finite(e) for e in self.growth],
        }


def json_safe(value):
    """``value`` (dicts, lists, numbers) with every non-finite float as ``None``: JSON has no
    NaN or Infinity, and ``--json`` output must parse with any reader."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    return value


def _finite(x: float) -> float | None:
    """JSON has no NaN: a row that could not be measured says null."""
    return x if np.isfinite(x) else None


def failing(name: str, shape: tuple[int, ...], against: str, bound: float, reason: str) -> Row:
    """A row that could not be compared (no manual gradient, not an array, ...): it fails."""
    nan = float("nan")
    return Row(name, tuple(shape), against, False, False, nan, nan, bound, reason, reason)


def compare(
    name: str,
    manual: np.ndarray,
    reference: np.ndarray,
    against: str,
    scale: float | None = None,
    bound: float = 0.0,
    n: list[int] | None = None,
    indices: list[np.ndarray] | None = None,
) -> Row:
    """Compare ``manual`` with ``reference``; a shape or dtype that differs is a failing row with
    its reason (no silent broadcast). A failing row is diagnosed (``n``: its batch counts,
    ``indices``: the batch's integer inputs, see :func:`jaxninja.gradcheck.diagnose.diagnose`)."""
    manual, reference = np.asarray(manual), np.asarray(reference)
    why = ""
    if manual.shape != reference.shape:
        why = f"shape {manual.shape} for a {reference.shape} value"
    elif manual.dtype != reference.dtype:
        why = f"dtype {manual.dtype} for a {reference.dtype} value"
    if why:
        nan = float("nan")
        diagnosis = diagnose(manual, reference, n=n, indices=indices, scale=scale)
        return Row(name, reference.shape, against, False, False, nan, nan, bound, why, diagnosis)
    with np.errstate(all="ignore"):  # inf - inf is nan, said by the diagnosis: no warnings
        maxdiff, error = numerics.eps_scale(manual, reference, scale)
    row = Row(
        name=name,
        shape=reference.shape,
        against=against,
        exact=bool(np.array_equal(manual, reference)),
        close=bool(np.allclose(manual, reference)),  # torch.allclose's defaults, like cmp
        maxdiff=maxdiff,
        eps_scale=error,
        bound=bound,
    )
    if row.ok:
        return row
    return row._replace(diagnosis=diagnose(manual, reference, n=n, indices=indices, scale=scale))


def compare_rows(
    manual: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    against: str,
    bound: float = 0.0,
    symmetric_bound: float | None = None,
    scale_rows: dict[str, str] | None = None,
    counts: dict[str, list[int]] | None = None,
    indices: list[np.ndarray] | None = None,
) -> list[Row]:
    """Compare every row of ``reference``, in ``manual``'s order (a backward's order, so the
    first failing row is where a mistake starts); zero-by-symmetry rows (``scale_rows``,
    default the lecture's :data:`ZERO_BY_SYMMETRY`) use their upstream row's scale and
    ``symmetric_bound`` (default: ``bound``). A reference row without a manual gradient, and a
    manual gradient of nothing in ``reference``, are failing rows. ``counts`` (each row's batch
    counts) and ``indices`` (the batch's integer inputs) serve the diagnosis."""
    scale_rows = ZERO_BY_SYMMETRY if scale_rows is None else scale_rows
    order = [k for k in manual if k in reference] + [k for k in reference if k not in manual]
    rows = []
    for name in order:
        ref = reference[name]
        upstream = scale_rows.get(name)
        scale = numerics.row_scale(reference[upstream]) if upstream in reference else None
        b = bound if upstream is None or symmetric_bound is None else symmetric_bound
        if name not in manual:
            rows.append(failing(name, np.shape(ref), against, b, "no manual gradient"))
            continue
        n = (counts or {}).get(name)
        rows.append(
            compare(name, manual[name], ref, against, scale=scale, bound=b, n=n, indices=indices)
        )
    for name in manual:
        if name not in reference:
            why = "not a tapped value or parameter (no gradient to compare with)"
            rows.append(failing(name, np.shape(manual[name]), against, bound, why))
    return rows
