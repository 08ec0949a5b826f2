"""A proved claim printed as jax.numpy code close to how it was written.

The claim's text is re-read with the broadcasting rules of :mod:`derivations.claims`, and each
value becomes code with its axes: operands lined up by declared axes get the transposes and
``None`` axes numpy needs (``rinv[:, None] * x``); everything numpy already does the same way
(``@``, ``.T``, ``keepdims``, positional broadcasting, ``einsum``) is printed as written. The
claim was proved equal to the derived gradient under exactly these rules, and the kernel is
verified either way; a claim this module cannot print (None) is printed from its index form.
"""

from __future__ import annotations

import ast
import itertools
from typing import NamedTuple

from derivations.userlayer import Layer

_FUNCTIONS = {
    "exp": "jnp.exp",
    "log": "jnp.log",
    "sqrt": "jnp.sqrt",
    "tanh": "jnp.tanh",
    "erf": "jax.scipy.special.erf",
    "sigmoid": "jax.nn.sigmoid",
    "abs": "jnp.abs",
    "relu": "jax.nn.relu",
    "maximum": "jnp.maximum",
}
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_counter = itertools.count()


class Code(NamedTuple):
    """A claim's value as code: the text, its axes ((label or None, size) each), and the
    precedence of its outermost operator (parentheses only where Python needs them)."""

    text: str
    axes: tuple
    prec: int = 100  # an atom: a name, a call, a subscript


# @ binds like * in Python; 61 here (59 for its result) puts parentheses where the two mix,
# which Python would group the same way: (w * x) @ K, (dout @ W.T) * g
_PREC = {ast.Add: 50, ast.Sub: 50, ast.Mult: 60, ast.Div: 60, ast.MatMult: 61, ast.Pow: 80}


def _binary(op: type, left: Code, right: Code, left_text: str, right_text: str) -> str:
    """``left op right`` with the parentheses the claim's tree needs and no more."""
    prec = _PREC[op]
    symbol = {**_OPS, ast.MatMult: "@"}[op]
    if left.prec < prec or (op is ast.Pow and left.prec <= prec):
        left_text = f"({left_text})"
    if right.prec <= prec and not (op is ast.Pow and right.prec == prec):
        right_text = f"({right_text})"
    return (
        f"{left_text} {symbol} {right_text}" if op is not ast.Pow else f"{left_text}**{right_text}"
    )


class _Unprintable(Exception):
    pass


def _paren(text: str) -> str:
    from derivations.arrayprint import paren

    return paren(text)


class ClaimCode:
    """Translate one claim's text (already parsed and proved) into code."""

    def __init__(self, layer: Layer, dtype: str = "") -> None:
        self.layer, self.dtype = layer, dtype

    def value(self, node: ast.AST) -> Code:
        layer = self.layer
        if isinstance(node, ast.Constant):
            return Code(repr(node.value), ())
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            text = inner.text if inner.prec >= 70 else f"({inner.text})"
            return Code(f"-{text}", inner.axes, 70)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            a, b = self.value(node.left), self.value(node.right)
            text = _binary(ast.MatMult, a, b, a.text, b.text)
            return Code(text, _matmul_axes(a.axes, b.axes), 59)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            a, b = self.value(node.left), self.value(node.right)
            left, right, axes = self.broadcast(a, b)
            left_prec = a.prec if left == a.text else 100
            right_prec = b.prec if right == b.text else 100
            text = _binary(
                type(node.op), a._replace(prec=left_prec), b._replace(prec=right_prec), left, right
            )
            return Code(text, axes, _PREC[type(node.op)])
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            symbol = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<="}[type(node.ops[0])]
            a, b = self.value(node.left), self.value(node.comparators[0])
            left, right, axes = self.broadcast(a, b)
            return Code(f"({left} {symbol} {right})", axes)
        if isinstance(node, ast.Attribute) and node.attr == "T":
            inner = self.value(node.value)
            return Code(f"{_paren(inner.text)}.T", tuple(reversed(inner.axes)))
        if isinstance(node, ast.Name):
            key = node.id
            if key in layer.sizes or key in {str(c) for c in layer.constants.values()}:
                return Code(key, ())
            if key == "pi":
                return Code("jnp.pi", ())
            shape = layer.output.shape if key == str(layer.upstream) else layer.shape_of(key)
            return Code(key, tuple((next(_counter), size) for size in shape))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node.func.id, node)
        raise _Unprintable(ast.unparse(node))

    def call(self, func: str, node: ast.Call) -> Code:
        keywords = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        if func in ("sum", "mean"):
            inner = self.value(node.args[0])
            rank = len(inner.axes)
            axis = keywords.get("axis", tuple(range(rank)))
            positions = sorted({x % rank for x in (axis if isinstance(axis, tuple) else (axis,))})
            keep = keywords.get("keepdims") is True
            axes = tuple(
                (None, 1) if k in positions else ax
                for k, ax in enumerate(inner.axes)
                if keep or k not in positions
            )
            shown = positions[0] if len(positions) == 1 else tuple(positions)
            extra = ", keepdims=True" if keep else ""
            return Code(f"jnp.{func}({inner.text}, axis={shown}{extra})", axes)
        if func == "one_hot":
            key = node.args[0].id
            shape, classes = self.layer.labels[key]
            dtype = self.dtype or f"{next(iter(self.layer.inputs))}.dtype"
            axes = tuple((next(_counter), size) for size in (*shape, classes))
            return Code(f"jax.nn.one_hot({key}, {classes}, dtype={dtype})", axes)
        if func == "einsum":
            spec = ast.literal_eval(node.args[0])
            operands = [self.value(arg) for arg in node.args[1:]]
            inputs, output = spec.replace(" ", "").split("->")
            sizes = {}
            for term, operand in zip(inputs.split(","), operands, strict=True):
                sizes.update(zip(term, (size for _, size in operand.axes), strict=True))
            args = ", ".join(o.text for o in operands)
            axes = tuple((next(_counter), sizes[x]) for x in output)
            return Code(f'jnp.einsum("{spec}", {args})', axes)
        if func in _FUNCTIONS:
            args = [self.value(arg) for arg in node.args]
            if len(args) == 2:
                left, right, axes = self.broadcast(*args)
                return Code(f"{_FUNCTIONS[func]}({left}, {right})", axes)
            return Code(f"{_FUNCTIONS[func]}({args[0].text})", args[0].axes)
        raise _Unprintable(func)

    # ---- rule 1 needs code; rule 2 is numpy's own broadcasting
    def broadcast(self, a: Code, b: Code) -> tuple[str, str, tuple]:
        if not a.axes or not b.axes:
            return a.text, b.text, a.axes or b.axes
        positional = any(index is None for index, _ in (*a.axes, *b.axes)) or any(
            len({s for _, s in x.axes}) != len(x.axes) for x in (a, b)
        )
        if positional:
            longer = a if len(a.axes) >= len(b.axes) else b
            return a.text, b.text, longer.axes
        asizes, bsizes = [s for _, s in a.axes], [s for _, s in b.axes]
        if set(bsizes) <= set(asizes):
            order = asizes
        elif set(asizes) <= set(bsizes):
            order = bsizes
        else:
            order = [s for s in self.layer.axes if s in set(asizes) | set(bsizes)]
        axes = tuple((next(_counter), s) for s in order)
        return _place(a.text, asizes, order), _place(b.text, bsizes, order), axes


def _matmul_axes(a: tuple, b: tuple) -> tuple:
    a2 = a if len(a) > 1 else ((None, 1), *a)
    b2 = b if len(b) > 1 else (*b, (None, 1))
    lead = a2[:-2] if len(a2) >= len(b2) else b2[:-2]
    axes = [*lead]
    if len(a) > 1:
        axes.append(a2[-2])
    if len(b) > 1:
        axes.append(b2[-1])
    return tuple(axes)


def _place(text: str, sizes: list, order: list) -> str:
    """``text`` (axes ``sizes``, distinct) on the axes ``order``: transposed, ``None`` added."""
    ordered = sorted(sizes, key=order.index)
    if ordered != sizes:
        perm = tuple(sizes.index(s) for s in ordered)
        text = f"{_paren(text)}.T" if len(sizes) == 2 else f"jnp.transpose({text}, {perm})"
    start = order.index(ordered[0])
    slots = [":" if s in ordered else "None" for s in order[start:]]
    if "None" not in slots:
        return text
    while slots[-1] == ":":
        slots.pop()
    return f"{_paren(text)}[{', '.join(slots)}]"


def claim_code(layer: Layer, key: str, dtype: str = "") -> str | None:
    """The proved claim for input ``key`` as code of the input's shape, or None; ``dtype``:
    the code of a one-hot's dtype (default: the first input's)."""
    try:
        node = ast.parse(layer.claim_text[key].strip(), mode="eval").body
        value = ClaimCode(layer, dtype).value(node)
    except (_Unprintable, ValueError, KeyError, StopIteration, SyntaxError, TypeError):
        return None
    shape = layer.inputs[key]
    sizes = [s for _, s in value.axes]
    target = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    if any(index is None for index, _ in value.axes) or len(set(shape)) != len(shape):
        pad = len(value.axes) - len(shape)  # numpy's rule: right-aligned, leading 1s dropped
        if pad > 0:
            full = "(" + ", ".join(["1"] * pad + [str(s) for s in shape]) + ")"
            return f"jnp.reshape(jnp.broadcast_to({value.text}, {full}), {target})"
        return value.text if sizes == list(shape) else f"jnp.broadcast_to({value.text}, {target})"
    if sizes == list(shape):
        return value.text
    if set(sizes) <= set(shape):
        placed = _place(value.text, sizes, list(shape)) if sizes else value.text
        return f"jnp.broadcast_to({placed}, {target})"
    return None
