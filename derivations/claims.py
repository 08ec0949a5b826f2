"""Claims in array form: a gradient written as numpy would compute it, for arrays of any rank.

A claim is evaluated to an index expression at the gradient's free indices (p on axis 0, q on
axis 1, ...). Each value carries its axes, one (index, size) per position; a ``keepdims``
position has size 1. The broadcasting rules, each tested:

1. **By declared axes** (the default): when neither operand has a repeated axis or a size-1
   position, arrays line up by their axis names, as in the lecture: ``rinv`` (n,) against ``x``
   (n, D) pairs ``n`` with ``n``. The result takes the order of the operand whose axes include
   the other's, else the layer's axis order.
2. **Positionally, like numpy**: when an operand has a repeated axis ((T, T)) or a size-1
   position (``keepdims=True``), positions are right-aligned and must agree in size or be 1.
   Ambiguous cases are errors: an operand of lower rank whose axis also occurs in the other's
   unaligned leading positions (``(T,)`` against ``(T, T)``).
3. ``sum`` / ``mean`` take ``axis=k`` or ``axis=(0, 1)`` (positions of the value, negative
   allowed) and ``keepdims=True``; with no ``axis`` they reduce every axis.
4. ``a > b`` (``>=``, ``<``, ``<=``) is 0/1 and broadcasts as an operator: ``dout * (x > 0)``
   is relu's gradient. ``a @ b`` is numpy's matmul (a 1-D operand is a vector; leading
   positions broadcast positionally), ``a.T`` reverses the axes, ``einsum('btc,ch->bth', x,
   W)`` sums the letters missing after ``->`` (a letter must keep one size; an operand needs
   one letter per axis).
5. The claim's value lines up with the input's shape by rule 1 when the input has no repeated
   axis and the value no size-1 position, else by rule 2; an axis the input lacks must have been
   reduced (an error names it), an axis the value lacks broadcasts.
"""

from __future__ import annotations

import ast
import itertools
from typing import NamedTuple

import sympy as sp

from derivations.userlayer import (
    LETTERS,
    Layer,
    LayerError,
    _Evaluator,
    check_power,
    dims,
)


class Arr(NamedTuple):
    """A value of a claim: an index expression and its axes, (index or None, size) each."""

    expr: sp.Expr
    axes: tuple[tuple[sp.Symbol | None, sp.Expr], ...]

    @property
    def shape(self) -> tuple[sp.Expr, ...]:
        return tuple(size for _, size in self.axes)

    @property
    def repeated(self) -> bool:
        sizes = [size for index, size in self.axes if index is not None]
        return len(set(sizes)) != len(sizes)

    @property
    def kept(self) -> bool:
        return any(index is None for index, _ in self.axes)


_counter = itertools.count()


def _fresh() -> sp.Symbol:
    """A new index symbol for one position of one value (replaced before the claim is used)."""
    return sp.Dummy(f"c{next(_counter)}", integer=True, nonnegative=True)


def _scalar(value) -> Arr:
    return Arr(sp.sympify(value), ())


class ClaimEvaluator(_Evaluator):
    """A claim's text to an :class:`Arr`; see the module docstring for the rules."""

    def run_arr(self, text: str) -> Arr:
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as err:
            raise LayerError(f"{self.where}: not an expression: {err.msg}") from err
        try:
            return self.value(node)
        except (TypeError, ValueError, ZeroDivisionError, RecursionError) as err:
            raise LayerError(f"{self.where}: cannot evaluate: {err}") from err

    # ---- leaves
    def value(self, node: ast.AST) -> Arr:
        if isinstance(node, ast.Constant):
            return _scalar(self.number(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.value(node.operand)
            return Arr(-inner.expr, inner.axes) if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.MatMult):
                return self.matmul(self.value(node.left), self.value(node.right))
            if type(node.op) in _OPS:
                return self.binary_arr(node)
        if isinstance(node, ast.Name):
            return self.array(node.id)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
            from derivations.functions import comparison

            a, b, axes = self.broadcast(
                self.value(node.left), self.value(node.comparators[0]), ast.unparse(node)
            )
            return Arr(comparison(_CMP[type(node.ops[0])], a, b), axes)
        if isinstance(node, ast.Attribute) and node.attr == "T":
            inner = self.value(node.value)
            return Arr(inner.expr, tuple(reversed(inner.axes)))
        if isinstance(node, ast.Subscript):
            self.fail(f"{ast.unparse(node)!r}: a claim uses whole arrays, not elements")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call_arr(node.func.id, node)
        self.fail(f"unsupported syntax {ast.unparse(node)!r}")

    def array(self, key: str) -> Arr:
        value = self.scalar(key)
        if value is not None:
            return _scalar(value)
        layer = self.layer
        if key == str(layer.upstream):
            if layer.is_loss:
                self.fail(f"{key}: the output is a loss, there is no upstream gradient")
            base, shape = layer.upstream, layer.output.shape
        elif key in layer.labels:
            self.fail(f"{key} is a labels array: use one_hot({key})")
        elif key in layer.arrays or key in layer.names:
            shape = layer.shape_of(key)
            base = layer.arrays.get(key)
            base = base if base is not None else layer.names[key].target
        else:
            self.fail(f"unknown symbol {key!r}")
        if not shape:
            return _scalar(base)
        axes = tuple((_fresh(), size) for size in shape)
        return Arr(base[tuple(index for index, _ in axes)], axes)

    # ---- broadcasting
    def binary_arr(self, node: ast.BinOp) -> Arr:
        left, right = self.value(node.left), self.value(node.right)
        if isinstance(node.op, ast.Pow) and not right.axes:
            check_power(
                left.expr if not left.axes else sp.Symbol("a"),
                right.expr,
                ast.unparse(node),
                self.fail,
            )
        a, b, axes = self.broadcast(left, right, ast.unparse(node))
        return Arr(_OPS[type(node.op)](a, b), axes)

    def broadcast(self, left: Arr, right: Arr, text: str):
        """Both expressions on common axes, and those axes (rules 1 and 2)."""
        if not left.axes or not right.axes:
            return left.expr, right.expr, left.axes or right.axes
        if not (left.repeated or right.repeated or left.kept or right.kept):
            return self._by_axes(left, right)
        return self._positional(left, right, text)

    def _by_axes(self, left: Arr, right: Arr):
        lsizes = {size: index for index, size in left.axes}
        rsizes = {size: index for index, size in right.axes}
        swap = {rsizes[size]: index for size, index in lsizes.items() if size in rsizes}
        right_expr = right.expr.xreplace(swap)
        if set(rsizes) <= set(lsizes):
            axes = left.axes
        elif set(lsizes) <= set(rsizes):
            axes = tuple((swap.get(index, index), size) for index, size in right.axes)
        else:
            merged = {**{s: i for s, i in rsizes.items()}, **lsizes}
            axes = tuple((merged[s], s) for s in self.layer.axes if s in merged)
        return left.expr, right_expr, axes

    def _positional(self, left: Arr, right: Arr, text: str):
        short, long_ = sorted((left, right), key=lambda a: len(a.axes))
        lead = long_.axes[: len(long_.axes) - len(short.axes)]
        lead_sizes = {size for index, size in lead if index is not None}
        if lead and not short.kept and any(size in lead_sizes for _, size in short.axes):
            self.fail(
                f"{text!r}: ambiguous broadcast of shape {dims(short.shape)} against "
                f"{dims(long_.shape)}: use keepdims=True, the same rank, or einsum"
            )
        swap, axes = {}, list(lead)
        for (li, ls), (ri, rs) in zip(long_.axes[len(lead) :], short.axes, strict=True):
            if li is not None and ri is not None:
                if ls != rs:
                    self.fail(
                        f"{text!r}: shape mismatch: {dims(short.shape)} against "
                        f"{dims(long_.shape)} ({rs} against {ls})"
                    )
                swap[ri] = li
                axes.append((li, ls))
            else:
                axes.append((li, ls) if li is not None else (ri, rs))
        short_expr = short.expr.xreplace(swap)
        if short is left:
            return short_expr, long_.expr, tuple(axes)
        return long_.expr, short_expr, tuple(axes)

    # ---- calls
    def call_arr(self, func: str, node: ast.Call) -> Arr:
        if func in ("sum", "mean"):
            return self.reduce(func, node)
        if func == "one_hot":
            return self.one_hot(node)
        if func == "einsum":
            return self.einsum(node)
        if func in ("exp", "log", "sqrt", "tanh", "erf", "sigmoid", "abs", "relu"):
            if len(node.args) != 1 or node.keywords:
                self.fail(f"{func}() takes one argument")
            inner = self.value(node.args[0])
            return Arr(_function(func)(inner.expr), inner.axes)
        if func == "maximum":
            if len(node.args) != 2 or node.keywords:
                self.fail("maximum() takes two arguments")
            a, b, axes = self.broadcast(
                self.value(node.args[0]), self.value(node.args[1]), ast.unparse(node)
            )
            return Arr(_function(func)(a, b), axes)
        self.fail(f"unknown function {func!r}")

    def reduce(self, func: str, node: ast.Call) -> Arr:
        keywords = {k.arg: k.value for k in node.keywords}
        if len(node.args) != 1 or not set(keywords) <= {"axis", "keepdims"}:
            self.fail(f"{func}(expr, axis=..., keepdims=...) takes one expression")
        inner = self.value(node.args[0])
        rank = len(inner.axes)
        if "axis" in keywords:
            axis = ast.literal_eval(keywords["axis"]) if _literal(keywords["axis"]) else None
            positions = axis if isinstance(axis, tuple) else (axis,)
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in positions):
                self.fail(f"{func}: axis must be an integer or a tuple of integers")
            for x in positions:
                if not -rank <= x < rank:
                    self.fail(f"{func}: axis {x} does not exist (the value has {rank} axes)")
            positions = tuple(sorted({x % rank for x in positions}))
        else:
            positions = tuple(range(rank))
        keepdims = keywords.get("keepdims")
        keep = keepdims is not None and _literal(keepdims) and ast.literal_eval(keepdims) is True
        if keepdims is not None and not _literal(keepdims):
            self.fail(f"{func}: keepdims must be True or False")
        total, count, axes = inner.expr, sp.Integer(1), []
        for position, (index, size) in enumerate(inner.axes):
            if position not in positions:
                axes.append((index, size))
                continue
            if index is not None:
                total = sp.Sum(total, (index, 0, size - 1))
                count *= size
            if keep:
                axes.append((None, sp.Integer(1)))
        total = total / count if func == "mean" else total
        return Arr(total, tuple(axes))

    def one_hot(self, node: ast.Call) -> Arr:
        if len(node.args) != 1 or not isinstance(node.args[0], ast.Name) or node.keywords:
            self.fail("one_hot(y) takes a labels array")
        key = node.args[0].id
        if key not in self.layer.labels:
            self.fail(f"one_hot: {key!r} is not a labels array")
        shape, classes = self.layer.labels[key]
        axes = tuple((_fresh(), size) for size in shape)
        column = _fresh()
        element = self.layer.arrays[key][tuple(i for i, _ in axes)] if axes else None
        if element is None:
            self.fail(f"one_hot: {key} has no axes")
        return Arr(sp.KroneckerDelta(column, element), (*axes, (column, classes)))

    def matmul(self, a: Arr, b: Arr) -> Arr:
        if not a.axes or not b.axes:
            self.fail("@ needs arrays on both sides")
        a_axes = a.axes if len(a.axes) > 1 else ((None, sp.Integer(1)), *a.axes)
        b_axes = b.axes if len(b.axes) > 1 else (*b.axes, (None, sp.Integer(1)))
        (ai, asize), (bi, bsize) = a_axes[-1], b_axes[-2]
        if asize != bsize or ai is None or bi is None:
            self.fail(f"@: shape mismatch: {dims(a.shape)} @ {dims(b.shape)}")
        dummy = _fresh()
        a_expr, b_expr = a.expr.xreplace({ai: dummy}), b.expr.xreplace({bi: dummy})
        left = Arr(a_expr, a_axes[:-2])
        right = Arr(b_expr, b_axes[:-2])
        if left.axes and right.axes:
            a_expr, b_expr, lead = self._positional(left, right, "@")
        else:
            lead = left.axes or right.axes
        axes = [*lead]
        if len(a.axes) > 1:
            axes.append(a_axes[-2])
        if len(b.axes) > 1:
            axes.append(b_axes[-1])
        return Arr(sp.Sum(a_expr * b_expr, (dummy, 0, asize - 1)), tuple(axes))

    def einsum(self, node: ast.Call) -> Arr:
        if not node.args or not _literal(node.args[0]) or node.keywords:
            self.fail("einsum('ij,jk->ik', a, b) takes a spec string and the operands")
        spec = ast.literal_eval(node.args[0])
        if not isinstance(spec, str) or spec.count("->") != 1:
            self.fail(f"einsum: spec {spec!r} needs one '->'")
        inputs, output = spec.replace(" ", "").split("->")
        terms = inputs.split(",")
        operands = [self.value(arg) for arg in node.args[1:]]
        if len(terms) != len(operands):
            self.fail(f"einsum: {spec!r} names {len(terms)} operands, {len(operands)} given")
        letters: dict[str, tuple[sp.Symbol, sp.Expr]] = {}
        product = sp.Integer(1)
        for term, operand, arg in zip(terms, operands, node.args[1:], strict=True):
            if not term.isalpha() or len(term) != len(operand.axes):
                self.fail(
                    f"einsum: letters {term!r} disagree with {ast.unparse(arg)}'s shape "
                    f"{dims(operand.shape)}"
                )
            expr = operand.expr
            for letter, (index, size) in zip(term, operand.axes, strict=True):
                if index is None:
                    self.fail(f"einsum: {ast.unparse(arg)} has a keepdims axis")
                if letter in letters:
                    symbol, known = letters[letter]
                    if known != size:
                        self.fail(
                            f"einsum: letter {letter!r} runs over {known} and over {size} "
                            f"in {ast.unparse(arg)}"
                        )
                    expr = expr.xreplace({index: symbol})
                else:
                    letters[letter] = (index, size)
            product *= expr
        for letter in output:
            if letter not in letters or output.count(letter) > 1:
                self.fail(f"einsum: output letter {letter!r} is not an input letter once")
        total = product
        for letter, (index, size) in letters.items():
            if letter not in output:
                total = sp.Sum(total, (index, 0, size - 1))
        return Arr(total, tuple(letters[letter] for letter in output))


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False
    return True


def _function(name: str):
    from derivations.functions import BINARY_FUNCTIONS, FUNCTIONS

    return {**FUNCTIONS, **BINARY_FUNCTIONS}[name]


_CMP = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<="}
_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


def align(layer: Layer, key: str, value: Arr, where: str) -> sp.Expr:
    """The claim's value on input ``key``'s free indices (rule 5), an index expression."""
    shape = layer.inputs[key]
    free = layer.free(shape)
    repeated = len(set(shape)) != len(shape)
    swap: dict[sp.Symbol, sp.Symbol] = {}
    if not repeated and not value.kept and not value.repeated:
        for index, size in value.axes:
            if size not in shape:
                raise LayerError(
                    f"{where}: shape mismatch: {key} has shape {dims(shape)} but the claim "
                    f"keeps axis {size}; reduce it with sum(...)"
                )
            swap[index] = free[shape.index(size)]
    else:
        axes = list(value.axes)
        while len(axes) > len(shape) and axes[0][0] is None:
            axes.pop(0)  # leading keepdims positions
        if len(axes) > len(shape):
            raise LayerError(
                f"{where}: shape mismatch: {key} has shape {dims(shape)}, the claim "
                f"{dims(value.shape)}"
            )
        for (index, size), target, size_at in zip(
            axes, free[len(shape) - len(axes) :], shape[len(shape) - len(axes) :], strict=True
        ):
            if index is None:
                continue
            if size != size_at:
                raise LayerError(
                    f"{where}: shape mismatch: {key} has shape {dims(shape)}, the claim "
                    f"{dims(value.shape)}"
                )
            swap[index] = target
    expr = value.expr.xreplace(swap)
    leftover = [x for x in expr.free_symbols if isinstance(x, sp.Dummy)]
    if leftover:
        raise LayerError(f"{where}: an axis of the claim does not line up with {key}")
    return expr


def claim_expr(layer: Layer, key: str, text: str | None = None) -> sp.Expr:
    """The claimed gradient of input ``key`` as an index expression at its free indices."""
    text = layer.claim_text[key] if text is None else text
    where = f"claim for {key} ({text.strip()!r})"
    value = ClaimEvaluator(layer, where).run_arr(text)
    return align(layer, key, value, where)


__all__ = ["LETTERS", "Arr", "ClaimEvaluator", "align", "claim_expr"]
