"""A proved claim printed as jax.numpy code, exactly as it was written.

A claim is read as numpy reads it (:mod:`derivations.language.claims`), and jax.numpy broadcasts the
same way, so each operator, subscript (``rinv[:, None]``), ``@``, ``.T``, ``keepdims`` and
``einsum`` is printed as written: nothing is transposed or given axes behind the claim's back. Only
the result is fitted to the input's shape where numpy would (``jnp.broadcast_to``, leading size-1
axes dropped). Each value is printed with its shape, to know that last step; a claim this module
cannot print (None) is printed from its index form.
"""

from __future__ import annotations

import ast
from typing import NamedTuple

from derivations.language.evaluator import OPERATORS, ExprEvaluator
from derivations.language.layer import Layer
from derivations.printing.jaxcode import paren

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
    "minimum": "jnp.minimum",
    "sign": "jnp.sign",
    "clip": "jnp.clip",
    "where": "jnp.where",
}
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


class Code(NamedTuple):
    """A claim's value as code: the text, its shape (sizes, 1 for a new axis), and the
    precedence of its outermost operator (parentheses only where Python needs them)."""

    text: str
    axes: tuple  # its shape, numpy's: one size per position
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


class ClaimCode(ExprEvaluator):
    """Translate one claim's text (already parsed and proved) into code, keeping each value's
    shape as numpy computes it; a construct it cannot print is :class:`_Unprintable`."""

    operators = {**OPERATORS, ast.MatMult: None}

    def __init__(self, layer: Layer, dtype: str = "") -> None:
        super().__init__("claim")
        self.layer, self.dtype = layer, dtype

    def fail(self, message: str):
        raise _Unprintable(message)

    def unsupported(self, node: ast.AST):
        raise _Unprintable(ast.unparse(node))

    def constant(self, node: ast.Constant) -> Code:
        return Code(repr(node.value), ())

    def negate(self, inner: Code) -> Code:
        text = inner.text if inner.prec >= 70 else f"({inner.text})"
        return Code(f"-{text}", inner.axes, 70)

    def binary(self, node: ast.BinOp, a: Code, b: Code) -> Code:
        op = type(node.op)
        text = _binary(op, a, b, a.text, b.text)
        if op is ast.MatMult:
            return Code(text, _matmul_shape(a.axes, b.axes), 59)
        return Code(text, _broadcast(a.axes, b.axes), _PREC[op])

    def compare(self, symbol: str, a: Code, b: Code, node: ast.Compare) -> Code:
        return Code(f"({a.text} {symbol} {b.text})", _broadcast(a.axes, b.axes))

    def _eval_Attribute(self, node: ast.Attribute) -> Code:
        if node.attr != "T":
            return self.unsupported(node)
        inner = self.eval(node.value)
        return Code(f"{paren(inner.text)}.T", tuple(reversed(inner.axes)))

    def name(self, key: str) -> Code:
        layer = self.layer
        if key in layer.sizes or key in {str(c) for c in layer.constants.values()}:
            return Code(key, ())
        if key == "pi":
            return Code("jnp.pi", ())
        shape = layer.output.shape if key == str(layer.upstream) else layer.shape_of(key)
        return Code(key, tuple(shape))

    def _eval_Subscript(self, node: ast.Subscript) -> Code:
        """``a[:, None]``, ``a[..., None]``: printed as written, with numpy's new shape."""
        inner = self.eval(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kinds = [
            ":" if isinstance(x, ast.Slice) else "..." if x.value is Ellipsis else "None"
            for x in items
        ]
        rank = len(inner.axes)
        if "..." in kinds:
            at = kinds.index("...")
            kinds[at : at + 1] = [":"] * (rank - kinds.count(":"))
        else:
            kinds += [":"] * (rank - kinds.count(":"))
        source = iter(inner.axes)
        shape = tuple(next(source) if kind == ":" else 1 for kind in kinds)
        index = ast.unparse(node.slice)
        index = index[1:-1] if index.startswith("(") and index.endswith(")") else index
        return Code(f"{paren(inner.text)}[{index}]", shape)

    def _call_sum(self, node: ast.Call) -> Code:
        return self.reduce("sum", node)

    def _call_mean(self, node: ast.Call) -> Code:
        return self.reduce("mean", node)

    def reduce(self, func: str, node: ast.Call) -> Code:
        keywords = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        inner = self.eval(node.args[0])
        rank = len(inner.axes)
        axis = keywords.get("axis", tuple(range(rank)))
        positions = sorted({x % rank for x in (axis if isinstance(axis, tuple) else (axis,))})
        keep = keywords.get("keepdims") is True
        shape = tuple(
            1 if k in positions else size
            for k, size in enumerate(inner.axes)
            if keep or k not in positions
        )
        shown = positions[0] if len(positions) == 1 else tuple(positions)
        extra = ", keepdims=True" if keep else ""
        return Code(f"jnp.{func}({inner.text}, axis={shown}{extra})", shape)

    def _call_one_hot(self, node: ast.Call) -> Code:
        key = node.args[0].id
        shape, classes = self.layer.labels[key]
        dtype = self.dtype or f"{next(iter(self.layer.inputs))}.dtype"
        return Code(f"jax.nn.one_hot({key}, {classes}, dtype={dtype})", (*shape, classes))

    def _call_einsum(self, node: ast.Call) -> Code:
        spec = ast.literal_eval(node.args[0])
        operands = [self.eval(arg) for arg in node.args[1:]]
        inputs, output = spec.replace(" ", "").split("->")
        sizes = {}
        for term, operand in zip(inputs.split(","), operands, strict=True):
            sizes.update(zip(term, operand.axes, strict=True))
        args = ", ".join(o.text for o in operands)
        return Code(f'jnp.einsum("{spec}", {args})', tuple(sizes[x] for x in output))

    def apply(self, func: str, args: list[Code], node: ast.Call) -> Code:
        shape = ()
        for arg in args:
            shape = _broadcast(shape, arg.axes)
        texts = ", ".join(arg.text for arg in args)
        return Code(f"{_FUNCTIONS[func]}({texts})", shape)


def _broadcast(a: tuple, b: tuple) -> tuple:
    """numpy's broadcast shape of two shapes the claim reader accepted (equal, or 1)."""
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True))


def _matmul_shape(a: tuple, b: tuple) -> tuple:
    a2 = a if len(a) > 1 else (1, *a)
    b2 = b if len(b) > 1 else (*b, 1)
    shape = [*_broadcast(a2[:-2], b2[:-2])]
    if len(a) > 1:
        shape.append(a2[-2])
    if len(b) > 1:
        shape.append(b2[-1])
    return tuple(shape)


def claim_code(layer: Layer, key: str, dtype: str = "") -> str | None:
    """The proved claim for input ``key`` as code of the input's shape, or None; ``dtype``:
    the code of a one-hot's dtype (default: the first input's)."""
    if key in layer.mismatches:
        return None  # never proved: never printed
    try:
        node = ast.parse(layer.claim_text[key].strip(), mode="eval").body
        value = ClaimCode(layer, dtype).eval(node)
    except (_Unprintable, ValueError, KeyError, StopIteration, SyntaxError, TypeError):
        return None
    shape = tuple(layer.inputs[key])
    sizes = tuple(value.axes)
    if sizes == shape:
        return value.text
    target = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    pad = len(sizes) - len(shape)  # numpy's rule: right-aligned, leading 1s dropped
    if pad > 0:
        full = "(" + ", ".join(["1"] * pad + [str(s) for s in shape]) + ")"
        return f"jnp.reshape(jnp.broadcast_to({value.text}, {full}), {target})"
    return f"jnp.broadcast_to({value.text}, {target})"
