"""The statement language's one core: a walker over Python's syntax tree with one method per
node class, ``_eval_<NodeClass>``, and one per function of the language, ``_call_<name>``, in
the manner of sympy's printers (``_print_<Class>``).

Every reading of a statement walks the same tree with this class; each kind of value is a
subclass that says what a node means there, never how the tree is walked:

- :class:`derivations.language.notation.SympyEvaluator` and its
  :class:`~derivations.language.notation.IndexEvaluator`: a forward line in index notation to
  a sympy expression;
- :class:`derivations.language.claims.ClaimEvaluator`: a claim to an index expression with its
  axes, read as numpy reads it;
- :class:`derivations.printing.claimcode.ClaimCode`: a proved claim to jax.numpy code;
- :class:`derivations.language.interpret.ForwardInterpreter`: a forward line to jax or torch
  arrays, for the verification;
- :class:`derivations.language.positions.IndexReader` (a position in brackets) and
  :class:`derivations.language.layer.SizeReader` (a size such as ``2*T2``).

:class:`Evaluator` reads what every one of them reads: numbers, names, ``+x``/``-x`` and the
binary operators a subclass lists in :attr:`Evaluator.operators`. :class:`ExprEvaluator` adds
comparisons and calls: a call is sent to ``_call_<name>`` where the subclass has one
(``sum``, ``einsum``, ...), else to :meth:`ExprEvaluator.apply` for the element-wise functions
(:data:`ARITY`), each checked for its number of arguments once, here. A node a subclass does
not read is :meth:`Evaluator.unsupported`: a one-line error naming the construct.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any, NoReturn

import sympy as sp

from derivations.language.functions import BINARY_FUNCTIONS, FUNCTIONS
from derivations.language.names import LayerError, keywords_in

COMPARISONS = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "=="}
OPERATORS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
# the element-wise functions, by their number of arguments
ARITY = {
    **{name: 1 for name in FUNCTIONS},
    **{name: 2 for name in BINARY_FUNCTIONS},
    "where": 3,
    "clip": 3,
}
_WORDS = {1: "one argument", 2: "two arguments", 3: "three arguments"}
MAX_POWER = 64  # exact verification raises rationals to this power at most (x**(2**100): never)


def parse(text: str, mode: str = "eval") -> ast.AST:
    """Python's parse of a statement's text (the expression, or the module in ``"exec"``
    mode). Every way a stranger's text can fail to parse is a :class:`SyntaxError` here (a
    nesting too deep for the parser, a null byte), so each caller handles one exception and
    says it in one line."""
    try:
        tree = ast.parse(text.strip(), mode=mode)
    except (RecursionError, MemoryError) as err:
        raise SyntaxError("nested too deeply") from err
    except ValueError as err:  # a null byte, in Python 3.11
        raise SyntaxError(str(err)) from err
    return tree.body if mode == "eval" else tree


class Evaluator:
    """The walk: :meth:`eval` sends each node to ``_eval_<its class>``; what is not read is
    :meth:`unsupported`. ``where`` prefixes every error (``claim for x ('...')``)."""

    # the binary operators this reading accepts (the rest are unsupported syntax)
    operators: dict[type, Any] = OPERATORS

    # where the text read stands in the statement ``where`` quotes (a forward line's right
    # side starts after its '='), for :meth:`fail_at`'s column
    column_base = 0
    statement: str | None = None

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, message: str) -> NoReturn:
        raise LayerError(f"{self.where}: {message}")

    def fail_at(self, node: ast.AST, message: str) -> NoReturn:
        """:meth:`fail`, naming the column of ``node`` in the statement; the error carries the
        statement and the column so :func:`derivations.language.layer.load_layer` can name
        the file's line and column too."""
        column = getattr(node, "col_offset", 0) + self.column_base
        err = LayerError(f"{self.where}, column {column + 1}: {message}")
        err.statement, err.column = self.statement or getattr(self, "text", None), column
        raise err

    def parse(self, text: str) -> ast.AST:
        """``text`` as one Python expression; a syntax error is a one-line error."""
        try:
            return parse(text)
        except SyntaxError as err:
            why = keywords_in(text)
            raise LayerError(f"{self.where}: not an expression: {err.msg}{why}") from err

    def run(self, text: str):
        """The value of ``text``; arithmetic that fails on the way (a division by zero, a
        nesting too deep) is a one-line error."""
        node = self.parse(text)
        self.text = text
        try:
            return self.eval(node)
        except (TypeError, ValueError, ZeroDivisionError, RecursionError) as err:
            raise LayerError(f"{self.where}: cannot evaluate: {err}") from err

    def eval(self, node: ast.AST):
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is None:
            return self.unsupported(node)
        return method(node)

    def unsupported(self, node: ast.AST) -> NoReturn:
        self.fail(f"unsupported syntax {ast.unparse(node)!r}")

    # ---- the nodes every reading has
    def _eval_Constant(self, node: ast.Constant):
        return self.constant(node)

    def _eval_Name(self, node: ast.Name):
        return self.name(node.id)

    def _eval_UnaryOp(self, node: ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return self.negate(self.eval(node.operand))
        if isinstance(node.op, ast.UAdd):
            return self.eval(node.operand)
        return self.unsupported(node)

    def _eval_BinOp(self, node: ast.BinOp):
        if type(node.op) not in self.operators:
            return self.unsupported(node)
        left, right = self.eval(node.left), self.eval(node.right)
        return self.finite(node, self.binary(node, left, right))

    # ---- what a reading says about them
    def constant(self, node: ast.Constant):
        raise NotImplementedError

    def name(self, key: str):
        raise NotImplementedError

    def negate(self, value):
        return -value

    def finite(self, node: ast.BinOp, value):
        """``value``, or an error where the operation made it infinite or undefined (a reading
        of exact numbers, :class:`derivations.language.notation.SympyEvaluator`, says)."""
        return value

    def binary(self, node: ast.BinOp, left, right):
        return self.operators[type(node.op)](left, right)


class ExprEvaluator(Evaluator):
    """An expression of the statement language: numbers, names, operators, one comparison
    (``a > b``) and calls of the language's functions."""

    def _eval_Compare(self, node: ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in COMPARISONS:
            self.fail(f"{ast.unparse(node)!r}: one comparison of >, >=, <, <=, ==")
        left, right = self.eval(node.left), self.eval(node.comparators[0])
        return self.compare(COMPARISONS[type(node.ops[0])], left, right, node)

    def _eval_Call(self, node: ast.Call):
        if not isinstance(node.func, ast.Name):
            return self.unsupported(node)
        func = node.func.id
        special = getattr(self, f"_call_{func}", None)
        if special is not None:
            return special(node)
        if func not in ARITY:
            self.fail(f"unknown function {func!r}")
        if len(node.args) != ARITY[func] or node.keywords:
            self.fail(f"{func}() takes {_WORDS[ARITY[func]]}")
        if func == "where" and not isinstance(node.args[0], ast.Compare):
            self.fail(f"where: the condition {ast.unparse(node.args[0])!r} is not a comparison")
        return self.apply(func, [self.eval(arg) for arg in node.args], node)

    def compare(self, symbol: str, left, right, node: ast.Compare):
        raise NotImplementedError

    def apply(self, func: str, args: list, node: ast.Call):
        """The element-wise function ``func`` (of :data:`ARITY`) at its arguments' values."""
        raise NotImplementedError


def number(value, fail: Callable[[str], NoReturn]):
    """A number written in a statement as an exact rational, finite in float64 (the kernel
    computes with it); anything else (a string, True) is an error via ``fail``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"unsupported constant {value!r}")
    exact = sp.nsimplify(repr(value), rational=True)
    if not math.isfinite(float(exact)):
        fail(f"the number {value!r} does not fit a float64")
    return exact


def check_power(base, exponent, text: str, fail: Callable) -> None:
    """A power the engine can evaluate exactly: an array raised to at most :data:`MAX_POWER`,
    a number to a number whose value fits a float64 (the kernel computes with it)."""
    base, exponent = sp.sympify(base), sp.sympify(exponent)
    if not exponent.is_Number:
        return
    if not base.is_Number:
        if abs(exponent) > MAX_POWER:
            fail(f"the power in {text!r} is beyond {MAX_POWER}")
        return
    if abs(exponent) > 4 * MAX_POWER**2:
        fail(f"{text!r} is too large a number")
    value = base**exponent
    if value.is_Number and value != 0:
        try:
            fits = math.isfinite(float(value)) and float(value) != 0.0
        except (OverflowError, TypeError):
            fits = False
        if not fits:
            fail(f"{text!r} does not fit a float64")
