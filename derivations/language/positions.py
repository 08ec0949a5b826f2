"""A position in brackets that is an expression, ``x[b, 2*t + k - P]``, and the factor that makes
a read outside the array zero.

A read at a position that is an expression (not a bare index name) is **zero outside the
array**: ``x[b, t + k - P]`` is 0 where ``t + k - P < 0`` or ``>= L``, and also where the position
is not an integer (``dout[b, (s - k) / 2]`` is 0 at odd ``s - k``: the zeros a strided
convolution's transpose inserts). The element is held as ``x[b, e] * InRange(e, L)``; the engine
decides claims about such reads in :mod:`derivations.engine.shifts`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import sympy as sp

from derivations.language.evaluator import Evaluator


class InRange(sp.Function):
    """``[0 <= e < n and e is an integer]`` (1 or 0): a shifted read's factor. Never
    differentiated (its arguments are positions and sizes, not array elements)."""

    nargs = 2

    @classmethod
    def eval(cls, position, size):
        if position.is_Number and size.is_Number:
            inside = position.is_Integer and 0 <= position < size
            return sp.S.One if inside else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _sympystr(self, printer) -> str:
        position, size = (printer._print(x) for x in self.args)
        return f"in_range({position}, {size})"


def has_shifts(expr: sp.Expr) -> bool:
    """A shifted read somewhere in ``expr``."""
    return bool(sp.sympify(expr).atoms(InRange))


class IndexReader(Evaluator):
    """A position in brackets that is an expression: integers, the line's index names, sizes
    and integer constants, with ``+ - *``, ``//`` and ``%`` by a positive integer or a size,
    and ``/`` by a positive integer; anything else is a one-line error via ``fail``."""

    operators = {
        ast.Add: None,
        ast.Sub: None,
        ast.Mult: None,
        ast.FloorDiv: None,
        ast.Mod: None,
        ast.Div: None,
    }

    def __init__(self, indices: dict, scalar: Callable, constant_values: dict, fail) -> None:
        super().__init__("")
        self.indices, self.scalar, self.values = indices, scalar, constant_values
        self.fail = fail  # the line's: its errors name the line

    def read(self, node: ast.AST) -> sp.Expr:
        return self.eval(node)

    def unsupported(self, node: ast.AST):
        self.fail(f"position {ast.unparse(node)!r}: not an index expression")

    def _eval_UnaryOp(self, node: ast.UnaryOp) -> sp.Expr:
        if isinstance(node.op, ast.USub):  # -k; +k is not a position (a bare index is)
            return -self.eval(node.operand)
        return self.unsupported(node)

    def constant(self, node: ast.Constant) -> sp.Expr:
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            self.fail(f"position {ast.unparse(node)!r}: only integers in a position")
        return sp.Integer(node.value)

    def binary(self, node: ast.BinOp, left: sp.Expr, right: sp.Expr) -> sp.Expr:
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            if not (self._plain(left) or self._plain(right)):
                self.fail(f"position {ast.unparse(node)!r}: multiply an index by a number")
            return left * right
        return self._divide(node, left, right)

    def _plain(self, expr: sp.Expr) -> bool:
        """Free of the line's indices: a number, a size or a constant."""
        return not expr.free_symbols & set(self.indices.values())

    def _divide(self, node: ast.BinOp, left: sp.Expr, right: sp.Expr) -> sp.Expr:
        text = ast.unparse(node)
        positive = right.is_Integer and right > 0
        if isinstance(node.op, ast.Div):
            if not positive:
                self.fail(f"position {text!r}: divide by a positive integer")
            return left / right
        if not (positive or (self._plain(right) and right.is_positive and right.is_integer)):
            self.fail(f"position {text!r}: // and % take a positive integer or a size")
        return sp.floor(left / right) if isinstance(node.op, ast.FloorDiv) else sp.Mod(left, right)

    def name(self, key: str) -> sp.Expr:
        if key in self.indices:
            return self.indices[key]
        value = self.scalar(key)
        if value is None:
            self.fail(f"position: unknown name {key!r}")
        exact = self.values.get(value, value)
        if not (exact.is_integer or (exact.is_Number and exact.is_Integer)):
            self.fail(f"position: {key} is not an integer (a position takes integers)")
        return value
