"""Lower index expressions to jax.numpy array code that reads as written by hand.

Every array is named after its notebook variable and indexed the notebook's way: the free index
``p`` (or ``r``) runs along axis 0 and ``q`` (or ``s``) along axis 1; one-index arrays are kept
broadcastable (``bngain`` is (1, H), ``counts_sum`` is (n, 1)). The printer then needs only a
few rules:

- an element-wise sum over one axis prints as ``jnp.sum(..., axis=a, keepdims=True)``;
- a sum of a product of two matrices over a shared index prints as ``@`` (with ``.T`` where the
  summed index is on the other side);
- ``KroneckerDelta(q, y[p])`` prints as ``jax.nn.one_hot(y, V, dtype=...)``;
- a sum of ``KroneckerDelta(r, xb[i, t]) * demb[i, t, s]`` prints as a scatter-add;
- ``AxisMax(logits[p, j], j)`` prints as ``jnp.max(logits, axis=1, keepdims=True)``.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.str import StrPrinter

from derivations.indices import p, q, r, s
from derivations.spec import AxisMax

FREE_AXIS = {p: 0, q: 1, r: 0, s: 1}


class PrintError(ValueError):
    """An index expression has no array form under the printer's rules."""


class JaxPrinter(StrPrinter):
    """Prints one right-hand side; ``settings`` name the one-hot dtype and scatter shape."""

    printmethod = "_jaxcode"  # not Indexed._sympystr: every array goes through this printer
    _default_settings = {
        **StrPrinter._default_settings,
        "one_hot_dtype": None,
        "zeros_shape": None,
        "keepdims": True,
    }

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__(settings)
        self._axes = dict(FREE_AXIS)
        self._depth = 0  # nesting of sums: only the outermost may drop keepdims
        self._taken: set[sp.Symbol] = set()  # free indices on the axis being summed

    def _as_ordered_terms(self, expr: sp.Expr, order: str | None = None) -> list[sp.Expr]:
        """Positive terms first: ``probs - one_hot``, not ``-one_hot + probs``."""
        terms = super()._as_ordered_terms(expr, order=order)
        return sorted(terms, key=lambda term: term.could_extract_minus_sign())

    # ---- arrays and scalars
    def _print_Indexed(self, expr: sp.Indexed) -> str:
        if expr.rank >= 2:
            for position, index in enumerate(expr.indices):
                if self._axes.get(index) != position:
                    raise PrintError(f"{expr}: index {index} is not on axis {position}")
        return str(expr.base)

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        column, row = sorted(expr.args, key=lambda x: isinstance(x, sp.Indexed))
        if not isinstance(row, sp.Indexed) or self._axes.get(column) != 1:
            raise PrintError(f"{expr}: only one_hot(y[p]) along axis 1 is printable")
        dtype = self._settings["one_hot_dtype"]
        return f"jax.nn.one_hot({row.base}, V, dtype={dtype})"

    def _print_Function(self, expr: sp.Function) -> str:
        if isinstance(expr, AxisMax):
            body, index = expr.args
            axis = self._axis_of(index, body)
            with_axis = self._with_axis(index, axis)
            return f"jnp.max({with_axis._print(body)}, axis={axis}, keepdims=True)"
        name = type(expr).__name__
        if name in ("exp", "log", "tanh"):
            return f"jnp.{name}({self._print(expr.args[0])})"
        raise PrintError(f"no array form for {name}")

    # ---- sums
    def _axis_of(self, dummy: sp.Symbol, body: sp.Expr) -> int:
        """The axis a summed index runs along: its position in the matrices it indexes."""
        positions = {
            element.indices.index(dummy)
            for element in body.atoms(sp.Indexed)
            if element.rank >= 2 and dummy in element.indices
        }
        if len(positions) != 1:
            raise PrintError(f"{dummy} runs along axes {sorted(positions)} in {body}")
        return positions.pop()

    def _with_axis(self, dummy: sp.Symbol, axis: int) -> JaxPrinter:
        taken = {index for index, a in self._axes.items() if a == axis}
        inner = type(self)({**self._settings, "keepdims": True})  # subclasses keep their rules
        inner._axes = {index: a for index, a in self._axes.items() if a != axis}
        inner._axes[dummy] = axis
        inner._depth = self._depth + 1
        inner._taken = taken
        return inner

    def _print_Sum(self, expr: sp.Sum) -> str:
        if expr.function.atoms(sp.KroneckerDelta):
            return self._scatter(expr)
        if len(expr.limits) != 1:
            raise PrintError(f"{expr}: only one-index sums print as reductions")
        dummy = expr.limits[0][0]
        matmul = self._matmul(expr.function, dummy)
        if matmul is not None:
            return matmul
        axis = self._axis_of(dummy, expr.function)
        inner = self._with_axis(dummy, axis)
        if expr.function.free_symbols & inner._taken:
            raise PrintError(f"{expr}: the summed axis {axis} is also a free index")
        keepdims = ", keepdims=True" if self._settings["keepdims"] or self._depth else ""
        return f"jnp.sum({inner._print(expr.function)}, axis={axis}{keepdims})"

    def _matmul(self, body: sp.Expr, dummy: sp.Symbol) -> str | None:
        """``A @ B`` when ``body`` is (a constant times) two matrices sharing ``dummy``."""
        coeff, factors = body.as_independent(dummy, as_Add=False)
        matrices = sp.Mul.make_args(factors)
        if len(matrices) != 2 or not all(
            isinstance(m, sp.Indexed) and m.rank == 2 for m in matrices
        ):
            return None

        def free_axis(matrix: sp.Indexed) -> int | None:
            (index,) = (x for x in matrix.indices if x != dummy)
            return self._axes.get(index)

        if len({x for m in matrices for x in m.indices} - {dummy}) != 2:
            return None  # both share their other index: an element-wise product
        left, right = sorted(matrices, key=lambda m: str(free_axis(m)))
        if (free_axis(left), free_axis(right)) != (0, 1):
            raise PrintError(f"{body}: not a matrix product along {dummy}")
        lhs = f"{left.base}" if left.indices[1] == dummy else f"{left.base}.T"
        rhs = f"{right.base}" if right.indices[0] == dummy else f"{right.base}.T"
        product = f"{lhs} @ {rhs}"
        return product if coeff == 1 else f"{self._print(coeff)} * ({product})"

    def _scatter(self, expr: sp.Sum) -> str:
        """sum over i, t of KroneckerDelta(r, xb[i, t]) * demb[i, t, s]: a scatter-add."""
        (delta,) = expr.function.atoms(sp.KroneckerDelta)
        rows = next(arg for arg in delta.args if isinstance(arg, sp.Indexed))
        values = sp.simplify(expr.function / delta)
        if not isinstance(values, sp.Indexed):
            raise PrintError(f"{expr}: only a delta times one array scatters")
        shape = self._settings["zeros_shape"]
        return f"jnp.zeros({shape}, dtype={values.base}.dtype).at[{rows.base}].add({values.base})"


def spaced(code: str) -> str:
    """Spaces around ``*``, ``/`` and ``@``, as a person writes them (``**`` stays tight)."""
    code = re.sub(r"(?<![*\s])\*(?![*])", " * ", code)
    code = re.sub(r"(?<=[^*\s])/", " / ", code)
    return code


def to_code(
    expr: sp.Expr,
    one_hot_dtype: str | None = None,
    zeros_shape: str | None = None,
    keepdims: bool = True,
) -> str:
    """``expr`` as one line of jax.numpy code."""
    printer = JaxPrinter(
        {"one_hot_dtype": one_hot_dtype, "zeros_shape": zeros_shape, "keepdims": keepdims}
    )
    return spaced(printer.doprint(expr))
