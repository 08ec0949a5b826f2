"""The notebook's ``cmp``, grown up: exact, close, max difference, and the error in eps·scale.

The metric and every bound live in :mod:`jaxninja.numerics`. A row whose true gradient is zero by
symmetry (``dlogit_maxes``, ``db1``) has no scale of its own; it borrows the scale of the row its
sum comes from (``norm_logits``, ``hprebn``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxninja import numerics
from jaxninja.errors import JaxninjaError

ZERO_BY_SYMMETRY = {"logit_maxes": "norm_logits", "b1": "hprebn"}
"""Rows whose exact gradient is 0, and the upstream row whose scale they are measured at."""


class ShapeMismatchError(JaxninjaError, ValueError):
    """A gradient's shape differs from its reference's: broadcasting was not undone."""


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

    @property
    def ok(self) -> bool:
        return numerics.within(self.eps_scale, self.bound, self.exact)

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "against": self.against,
            "exact": self.exact,
            "close": self.close,
            "maxdiff": self.maxdiff,
            "eps_scale": self.eps_scale,
            "bound": self.bound,
            "ok": self.ok,
        }


def compare(
    name: str,
    manual: np.ndarray,
    reference: np.ndarray,
    against: str,
    scale: float | None = None,
    bound: float = 0.0,
) -> Row:
    """Compare ``manual`` with ``reference``; refuse shapes that differ (no silent broadcast)."""
    manual, reference = np.asarray(manual), np.asarray(reference)
    if manual.shape != reference.shape:
        raise ShapeMismatchError(
            f"{name}: gradient has shape {manual.shape} but the tensor "
            f"(and {against}'s gradient) has shape {reference.shape}"
        )
    maxdiff, error = numerics.eps_scale(manual, reference, scale)
    return Row(
        name=name,
        shape=reference.shape,
        against=against,
        exact=bool(np.array_equal(manual, reference)),
        close=bool(np.allclose(manual, reference)),  # torch.allclose's defaults, like cmp
        maxdiff=maxdiff,
        eps_scale=error,
        bound=bound,
    )


def compare_rows(
    manual: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    against: str,
    bound: float = 0.0,
    symmetric_bound: float | None = None,
) -> list[Row]:
    """Compare every row of ``reference``; zero-by-symmetry rows use their upstream scale and
    ``symmetric_bound`` (default: ``bound``)."""
    rows = []
    for name, ref in reference.items():
        upstream = ZERO_BY_SYMMETRY.get(name)
        scale = numerics.row_scale(reference[upstream]) if upstream in reference else None
        b = bound if upstream is None or symmetric_bound is None else symmetric_bound
        rows.append(compare(name, manual[name], ref, against, scale=scale, bound=b))
    return rows
