"""LaTeX of index expressions, with the notebook's names kept whole (``bnvar_inv`` stays one
name, not ``bnvar`` with a subscript)."""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter


class NotebookLatex(LatexPrinter):
    """sympy's LaTeX printer with arrays printed as upright whole names."""

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        name = str(expr.label).replace("_", r"\_")
        return rf"\mathrm{{{name}}}"

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        indices = ",".join(self._print(index) for index in expr.indices)
        return f"{self._print(expr.base)}_{{{indices}}}"

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr.name == "epsilon":
            return r"\epsilon"
        if len(expr.name) > 1:
            name = expr.name.replace("_", r"\_")
            return rf"\mathrm{{{name}}}"
        return super()._print_Symbol(expr, style)


def tex(expr: sp.Expr) -> str:
    """``expr`` in LaTeX."""
    return NotebookLatex().doprint(expr)


def tex_eq(lhs: sp.Expr, rhs: sp.Expr) -> str:
    """``lhs = rhs`` in LaTeX."""
    return f"{tex(lhs)} = {tex(rhs)}"
