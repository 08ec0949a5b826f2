"""A ``cmp`` that says what is wrong: which classic backprop mistake a failing row's numbers fit.

Each pattern is a transformation of the *true* gradient (the reference); a pattern fits when the
manual gradient is within :data:`jaxninja.numerics.ROUNDING` eps·scale of the transformed
reference, so a claim is a measurement, not a guess from shapes (except "summed over the wrong
axis", which the values of a reduced array cannot show; it says so). In the order tried:

- wrong shape that broadcasting hid: the right values in ``(64,)`` for ``(1, 64)`` (a missing
  ``keepdims=True``), or any reshape of the right values;
- transposed: ``mine.T`` is the gradient (a matmul's factors in the wrong order);
- not summed / summed over too few axes: summing ``mine`` over the axes where the true gradient
  has size 1 (or none) gives it (a broadcast in the forward is a sum in the backward);
- summed over the wrong axis: reduced over axis ``a`` where the gradient is reduced over ``b``;
- agreement to a few eps: rounding order, not a formula (README, "Why hpreact was not exact");
- off by a constant factor from the concrete list -1, 2, 1/2, n, 1/n, n - 1, n/(n - 1), with n
  the row's batch count (``B*T`` for a ``(B, T, ...)`` row);
- the right values at the wrong indices: rows of an embedding table hit by a repeated index are
  wrong and all others right (a scatter without accumulation, the notebook's ``dC`` trap; needs
  the batch's indices), or the same values in a different order (a permutation).

Otherwise: "no known pattern".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

import numpy as np

from jaxninja import numerics

README_HPREACT = "README: Why hpreact was not exact"
NO_PATTERN = "no known pattern"


def _fits(mine: np.ndarray, target: np.ndarray, scale: float | None = None) -> bool:
    """Whether ``mine`` equals ``target`` up to rounding (<= ROUNDING eps·scale)."""
    if mine.shape != target.shape:
        return False
    return numerics.eps_scale(mine, target, scale)[1] <= numerics.ROUNDING


def _eps_fits(mine: np.ndarray, target: np.ndarray, eps: float, scale: float | None) -> bool:
    """:func:`_fits` at a given eps (the reference's dtype; values are compared in float64)."""
    if mine.shape != target.shape:
        return False
    scale = numerics.row_scale(target) if scale is None else scale
    return numerics.max_abs_diff(mine, target) <= numerics.ROUNDING * eps * scale


def factors(n: Iterable[int]) -> list[tuple[str, float]]:
    """The constant factors tried, labelled: -1, 2, 1/2, then n, 1/n, n - 1, n/(n - 1) for each
    batch count n (1 and repeats left out: factor 1 is the right answer, not a mistake)."""
    out: list[tuple[str, Fraction]] = [
        ("-1", Fraction(-1)),
        ("2", Fraction(2)),
        ("1/2", Fraction(1, 2)),
    ]
    for k in dict.fromkeys(int(v) for v in n):
        if k < 2:
            continue
        out += [
            (f"n = {k}", Fraction(k)),
            (f"1/n = 1/{k}", Fraction(1, k)),
            (f"n - 1 = {k - 1}", Fraction(k - 1)),
            (f"n/(n - 1) = {k}/{k - 1}", Fraction(k, k - 1)),
        ]
    seen: set[Fraction] = {Fraction(1)}
    unique = []
    for label, value in out:
        if value not in seen:
            seen.add(value)
            unique.append((label, float(value)))
    return unique


def batch_counts(shape: tuple[int, ...]) -> list[int]:
    """The batch count n of a row from its shape alone: ``B*T`` for ``(B, T, ...)``, ``B`` for
    ``(B, ...)`` (used by :func:`cmp` when no n is given)."""
    if len(shape) >= 3:
        return [shape[0] * shape[1], shape[0]]
    return [shape[0]] if len(shape) == 2 else []


def _shape_patterns(mine: np.ndarray, ref: np.ndarray, eps: float, scale: float | None) -> str:
    m, r = mine.shape, ref.shape
    if mine.size == ref.size and _eps_fits(mine.reshape(r), ref, eps, scale):
        if tuple(d for d in m if d != 1) == tuple(d for d in r if d != 1):
            return (
                f"right values in shape {m} for {r}: broadcasting hid it (a missing keepdims=True)"
            )
        return f"right values in shape {m} for {r}: reshape them"
    if mine.ndim == 2 and m == r[::-1] and _eps_fits(mine.T, ref, eps, scale):
        return "transposed: mine.T is the gradient (a matmul's factors swapped)"
    if ref.ndim <= mine.ndim:
        padded = (1,) * (mine.ndim - ref.ndim) + r
        axes = tuple(i for i, (a, b) in enumerate(zip(m, padded, strict=True)) if a != b)
        if axes and all(padded[i] == 1 for i in axes):
            total = mine.sum(axis=axes, keepdims=True).reshape(r)
            if _eps_fits(total, ref, eps, scale):
                return (
                    f"not summed over axis {_axes(axes)}: mine.sum({_axes(axes)}) is the "
                    "gradient (a broadcast in the forward is a sum in the backward)"
                )
    if mine.ndim == ref.ndim:
        only_mine = tuple(i for i in range(ref.ndim) if m[i] == 1 and r[i] != 1)
        only_ref = tuple(i for i in range(ref.ndim) if r[i] == 1 and m[i] != 1)
        rest = all(m[i] == r[i] for i in range(ref.ndim) if i not in only_mine + only_ref)
        if only_mine and only_ref and rest:
            return (
                f"summed over axis {_axes(only_mine)} where the gradient is summed over "
                f"{_axes(only_ref)} (wrong axis; shape {m} for {r}, from the shapes alone)"
            )
    return f"wrong shape {m} for {r}: {NO_PATTERN}"


def _axes(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(axes)


def _scatter(mine: np.ndarray, ref: np.ndarray, indices, eps: float, scale: float) -> str:
    """Rows hit by one index (or none) right, rows hit by a repeated index wrong: ``.set``."""
    if mine.ndim < 1 or not ref.shape[0]:
        return ""
    for ix in indices:
        ix = np.asarray(ix).ravel()
        if not ix.size or not np.issubdtype(ix.dtype, np.integer):
            continue
        if ix.min() < 0 or ix.max() >= ref.shape[0]:
            continue
        counts = np.bincount(ix, minlength=ref.shape[0])
        rows = np.abs(mine - ref).reshape(ref.shape[0], -1).max(axis=1)
        wrong = rows > numerics.ROUNDING * eps * scale
        if wrong.any() and (counts[wrong] >= 2).all():
            repeated = int((counts >= 2).sum())
            return (
                f"right values at the wrong indices: {int(wrong.sum())} of the {repeated} rows "
                "hit by a repeated index are wrong, every other row right (a scatter without "
                "accumulation: use .at[ix].add, not .set)"
            )
    return ""


def diagnose(
    mine: np.ndarray,
    ref: np.ndarray,
    *,
    n: Sequence[int] | int | None = None,
    indices: Sequence[np.ndarray] | np.ndarray | None = None,
    scale: float | None = None,
) -> str:
    """One line: which mistake ``mine`` fits, measured against the true gradient ``ref``.

    ``n``: the row's batch count(s) for the factor patterns (default: from ``ref``'s shape,
    :func:`batch_counts`); ``indices``: integer arrays of the batch (e.g. the context ``xb``)
    for the scatter pattern; ``scale``: the row's scale when it is not its own (a
    zero-by-symmetry row). "" when ``mine`` equals ``ref`` exactly.
    """
    ref = np.asarray(ref)
    try:
        mine = np.asarray(mine, dtype=np.float64)
    except (TypeError, ValueError):
        return f"not an array of numbers: {type(mine).__name__}"
    eps = numerics.machine_eps(ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float64)
    ref64 = ref.astype(np.float64)
    if not np.isfinite(mine).all():
        same = mine.shape == ref.shape and np.array_equal(
            mine[~np.isfinite(mine)], ref64[~np.isfinite(mine)], equal_nan=True
        )
        if same and np.array_equal(~np.isfinite(mine), ~np.isfinite(ref64)):
            return (
                f"{_non_finite(mine)} where the true gradient has them too (e.g. sqrt or log "
                "at 0): no finite error to measure there"
            )
        return f"{_non_finite(mine)} in the gradient"
    if not np.isfinite(ref64).all():
        return (
            f"the true gradient has {_non_finite(ref64)} (e.g. sqrt or log at 0, an overflow), "
            "yours is finite there: no finite error to measure"
        )
    with np.errstate(all="ignore"):  # huge values may overflow in a pattern's arithmetic
        return _finite_patterns(mine, ref, ref64, eps, n, indices, scale)


def _non_finite(a: np.ndarray) -> str:
    """``2 inf entries`` / ``1 nan entry`` / ``2 inf and 1 nan entries``."""
    inf, nan = int(np.isinf(a).sum()), int(np.isnan(a).sum())
    parts = [f"{k} {what}" for k, what in ((inf, "inf"), (nan, "nan")) if k]
    return f"{' and '.join(parts)} {'entry' if inf + nan == 1 else 'entries'}"


def _finite_patterns(mine, ref, ref64, eps, n, indices, scale) -> str:
    """:func:`diagnose` once both arrays are finite."""
    if mine.shape != ref.shape:
        return _shape_patterns(mine, ref64, eps, scale)
    if np.array_equal(mine, ref64):
        return ""
    row_scale = numerics.row_scale(ref64) if scale is None else scale
    error = numerics.max_abs_diff(mine, ref64) / (eps * row_scale)
    if error <= numerics.ROUNDING:
        return (
            f"agrees to {error:.3g} eps·scale: rounding order, not a wrong formula "
            f"({README_HPREACT})"
        )
    if not ref64.any():
        return NO_PATTERN
    if mine.ndim == 2 and mine.shape[0] == mine.shape[1] and _eps_fits(mine.T, ref64, eps, scale):
        return "transposed: mine.T is the gradient (a matmul's factors swapped)"
    counts = batch_counts(ref.shape) if n is None else ([n] if isinstance(n, int) else list(n))
    ratio = float(np.vdot(mine, ref64) / np.vdot(ref64, ref64))
    for label, value in factors(counts):
        if abs(ratio - value) <= 1e-3 * abs(value) and _eps_fits(
            mine, value * ref64, eps, None if scale is None else abs(value) * scale
        ):
            return f"off by a constant factor {label}: mine = {label.split(' = ')[-1]} × true"
    if indices is not None:
        # one array (numpy or jax: anything with a shape), or a sequence of them
        indices = [indices] if hasattr(indices, "shape") else list(indices)
        found = _scatter(mine, ref64, indices, eps, row_scale)
        if found:
            return found
    if _eps_fits(np.sort(mine, axis=None), np.sort(ref64, axis=None), eps, scale):
        return "right values at the wrong positions (a permutation: wrong indices or order)"
    return NO_PATTERN


def cmp_line(name: str, mine: np.ndarray, ref: np.ndarray) -> str:
    """The notebook's line: ``name | exact: .. | approximate: .. | maxdiff: ..``."""
    mine, ref = np.asarray(mine), np.asarray(ref)
    same = mine.shape == ref.shape
    exact = same and bool(np.array_equal(mine, ref))
    approx = same and bool(np.allclose(mine, ref))
    maxdiff = numerics.max_abs_diff(mine, ref) if same else float("nan")
    return f"{name:15s} | exact: {exact!s:5s} | approximate: {approx!s:5s} | maxdiff: {maxdiff}"


def cmp(
    name: str,
    mine,
    ref,
    indices=None,
    *,
    n: Sequence[int] | int | None = None,
) -> None:
    """The notebook's ``cmp(s, dt, t)`` with the true gradient as ``ref`` (e.g. from
    :func:`jaxninja.intermediate_grads`), plus the diagnosis; prints the line and returns it.
    ``indices``: the batch's integer inputs, for the scatter pattern; ``n``: the batch count.
    A blank (``...`` or None, the exercises notebook's unfilled lines) prints "not yet". Returns
    None, like the lecture's, so a notebook cell shows the line once; :func:`cmp_text` returns
    it."""
    print(cmp_text(name, mine, ref, indices, n=n))


def cmp_text(name: str, mine, ref, indices=None, *, n: Sequence[int] | int | None = None) -> str:
    """The line :func:`cmp` prints."""
    if mine is Ellipsis or mine is None:
        return f"{name:15s} | not yet: fill in d{name}"
    mine, ref = np.asarray(mine), np.asarray(ref)
    if mine.dtype == object or mine.dtype.kind not in "biuf":
        return f"{name:15s} | not an array of numbers: {type(mine).__name__} {mine.dtype}"
    line = cmp_line(name, mine, ref)
    why = diagnose(mine, ref, n=n, indices=indices)
    return f"{line} | {why}" if why else line


__all__ = ["NO_PATTERN", "batch_counts", "cmp", "cmp_line", "cmp_text", "diagnose", "factors"]
