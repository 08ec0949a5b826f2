"""Claims in array form: a gradient written as numpy computes it, for arrays of any rank.

A claim is read exactly as numpy would run it on arrays of the declared shapes, with each size
a symbol: the rules are numpy's, with nothing lined up by name. Each value carries its axes, one
(index, size) per position; a position of size 1 (``keepdims=True``, ``a[:, None]``) has no
index. The rules, each tested:

1. **Broadcasting is positional**: shapes are right-aligned; two positions agree when their sizes
   are the same symbol or one of them is 1. ``g`` (D,) against ``dout`` (n, D) pairs D with D;
   ``rinv`` (n,) against ``x`` (n, D) pairs n with D, which numpy runs only when n = D: the claim
   is **refuted** (:class:`ShapeMismatch`), and the reason says how numpy writes what was meant
   (``rinv[:, None]``).
2. New axes: ``a[:, None]``, ``a[..., None]``, ``a[None, :]`` (a ``:`` per kept axis, ``...`` for
   the rest); any other subscript is an error (a claim uses whole arrays).
3. ``sum`` / ``mean`` take ``axis=k`` or ``axis=(0, 1)`` (negative allowed) and ``keepdims=True``;
   with no ``axis`` they reduce every axis.
4. ``a > b`` (``>=``, ``<``, ``<=``) is 0/1 and broadcasts as an operator: ``dout * (x > 0)`` is
   relu's gradient. ``a @ b`` is numpy's matmul (a 1-D operand is a vector, leading positions
   broadcast; contracting two different sizes is a mismatch), ``a.T`` reverses the axes,
   ``einsum('btc,ch->bth', x, W)`` sums the letters missing after ``->`` (a letter on two
   different sizes is a mismatch; an operand needs one letter per axis).
5. The claim's value must have the input's shape, in order; leading size-1 positions are
   dropped and a value of fewer axes is broadcast to the input's shape, as ``np.broadcast_to``
   does (a scalar ``0``, a row ``(D,)`` for an ``(n, D)`` input). Any other shape, axes
   transposed included, refutes the claim, with a counterexample at sizes where the axes differ.

What numpy refuses at every size (an ``axis`` that does not exist, ``einsum`` letters that
disagree with an operand's rank, an unknown name) is a statement error (:class:`LayerError`).
"""

from __future__ import annotations

import ast
import itertools
from typing import TYPE_CHECKING, NamedTuple

import sympy as sp

from derivations.language.evaluator import OPERATORS, check_power, parse
from derivations.language.names import LayerError, dims, fold
from derivations.language.notation import (
    IndexEvaluator,
    SympyEvaluator,
    fresh_dummies,
    index_sizes,
    parse_target,
)
from derivations.printing.jaxcode import paren

if TYPE_CHECKING:
    from derivations.language.layer import Layer


class Arr(NamedTuple):
    """A value of a claim: an index expression and its axes, (index or None, size) each."""

    expr: sp.Expr
    axes: tuple[tuple[sp.Symbol | None, sp.Expr], ...]

    @property
    def shape(self) -> tuple[sp.Expr, ...]:
        return tuple(size for _, size in self.axes)


class ShapeMismatch(NamedTuple):
    """Why a claim, read as numpy reads it, is not an array of the input's shape."""

    reason: str  # one line: what numpy does and what it would take
    sizes: dict[sp.Symbol, int]  # a counterexample: sizes where the axes differ
    example: str  # one line: what happens at those sizes


_ONE = sp.Integer(1)


def _scalar(value) -> Arr:
    return Arr(sp.sympify(value), ())


def distinct_sizes(layer: Layer, shapes) -> dict[sp.Symbol, int]:
    """Sizes at which the size symbols of ``shapes`` all differ (2, 3, ... in the layer's axis
    order) and every other axis is 2: where a coincidence of sizes no longer holds."""
    used = {size for shape in shapes for size in shape}
    out, value = {}, 2
    for axis in layer.axes:
        if axis in used:
            out[axis] = value
            value += 1
        else:
            out[axis] = 2
    return out


def _at(shape, sizes: dict) -> str:
    return dims(tuple(sp.sympify(size).xreplace(sizes) for size in shape))


def _sizes_text(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


class ClaimEvaluator(SympyEvaluator):
    """A claim's text to an :class:`Arr`, read as numpy reads it (see the module docstring).
    A shape numpy runs only at equal sizes is noted in :attr:`mismatches` (the value is then
    what numpy computes where they are equal) and refutes the claim."""

    operators = {**OPERATORS, ast.MatMult: None}

    def __init__(self, layer: Layer, where: str) -> None:
        super().__init__(layer, where)
        self.mismatches: list[ShapeMismatch] = []
        self._count = itertools.count()

    def fresh(self) -> sp.Symbol:
        """A new index symbol for one position of one value (replaced before the claim is
        used), named by its place in this claim alone (c0, c1, ...): a claim prints the same
        however many were read before it in the process."""
        return sp.Dummy(f"c{next(self._count)}", integer=True, nonnegative=True)

    def mismatch(self, reason: str, shapes, example) -> None:
        """Note a shape that numpy runs only where sizes coincide; ``example(sizes)`` says
        what numpy does at sizes where they do not."""
        sizes = distinct_sizes(self.layer, shapes)
        self.mismatches.append(ShapeMismatch(reason, sizes, example(sizes)))

    # ---- leaves
    def constant(self, node: ast.Constant) -> Arr:
        return _scalar(super().constant(node))

    def negate(self, value: Arr) -> Arr:
        return Arr(-value.expr, value.axes)

    def compare(self, symbol: str, left: Arr, right: Arr, node: ast.Compare) -> Arr:
        operands = [(node.left, left), (node.comparators[0], right)]
        (a, b), axes = self.broadcast(operands, node)
        return Arr(super().compare(symbol, a, b, node), axes)

    def _eval_Attribute(self, node: ast.Attribute) -> Arr:
        if node.attr != "T":
            return self.unsupported(node)
        inner = self.eval(node.value)
        return Arr(inner.expr, tuple(reversed(inner.axes)))

    def name(self, key: str) -> Arr:
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
            self.unknown(key)
        if not shape:
            return _scalar(base)
        axes = tuple((self.fresh(), size) for size in shape)
        return Arr(base[tuple(index for index, _ in axes)], axes)

    def unknown(self, key: str):
        """An unknown name; a ``d<name>`` says what the upstream gradient is called."""
        upstream = str(self.layer.upstream)
        if key.startswith("d") and len(key) > 1 and not self.layer.is_loss:
            self.fail(
                f"unknown symbol {key!r}: the upstream gradient (d objective / d "
                f"{self.layer.output.target}) is called {upstream!r} here (Layer(upstream=...))"
            )
        self.fail(f"unknown symbol {key!r}")

    def _eval_Subscript(self, node: ast.Subscript) -> Arr:
        """``a[:, None]``, ``a[..., None]``, ``a[None]``: numpy's new size-1 axes, no more."""
        inner = self.eval(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kinds = []
        for item in items:
            if isinstance(item, ast.Slice) and not (item.lower or item.upper or item.step):
                kinds.append(":")
            elif isinstance(item, ast.Constant) and item.value is None:
                kinds.append("None")
            elif isinstance(item, ast.Constant) and item.value is Ellipsis:
                kinds.append("...")
            else:
                self.fail(
                    f"{ast.unparse(node)!r}: a claim uses whole arrays; a subscript may only "
                    "add axes (a[:, None], a[..., None])"
                )
        if kinds.count("...") > 1:
            self.fail(f"{ast.unparse(node)!r}: at most one '...'")
        rank, kept = len(inner.axes), kinds.count(":")
        if kept > rank:
            self.fail(f"{ast.unparse(node)!r}: too many ':' for shape {dims(inner.shape)}")
        if "..." in kinds:
            at = kinds.index("...")
            kinds[at : at + 1] = [":"] * (rank - kept)
        else:
            kinds += [":"] * (rank - kept)  # numpy: the axes not named are kept at the end
        axes, source = [], iter(inner.axes)
        for kind in kinds:
            axes.append(next(source) if kind == ":" else (None, _ONE))
        return Arr(inner.expr, tuple(axes))

    # ---- broadcasting
    def binary(self, node: ast.BinOp, left: Arr, right: Arr) -> Arr:
        if isinstance(node.op, ast.MatMult):
            return self.matmul(node, left, right)
        if isinstance(node.op, ast.Pow) and not right.axes:
            check_power(
                left.expr if not left.axes else sp.Symbol("a"),
                right.expr,
                ast.unparse(node),
                self.fail,
            )
        (a, b), axes = self.broadcast([(node.left, left), (node.right, right)], node)
        return Arr(OPERATORS[type(node.op)](a, b), axes)

    def broadcast(self, operands: list[tuple[ast.AST, Arr]], node: ast.AST):
        """numpy's broadcasting of the operands, (source node, value) each, in ``node``: their
        expressions on common axes (each later operand's indices renamed to the first's at
        the same position), then those axes."""
        rank = max(len(value.axes) for _, value in operands)
        axes: list = [(None, _ONE)] * rank
        owner: list = [None] * rank  # which operand gave each position its index
        exprs = []
        for k, (source, value) in enumerate(operands):
            swap = {}
            for position, (index, size) in enumerate(value.axes, start=rank - len(value.axes)):
                known, known_size = axes[position]
                if index is None:
                    continue
                if known is None:
                    axes[position], owner[position] = (index, size), k
                    continue
                if known_size != size:
                    self._broadcast_mismatch(operands[owner[position]], (source, value), node)
                swap[index] = known
            exprs.append(value.expr.xreplace(swap))
        return exprs, tuple(axes)

    def _broadcast_mismatch(self, first, second, node) -> None:
        (left_node, left), (right_node, right) = first, second
        pairs = [
            (a, b)
            for a, b in zip(reversed(left.shape), reversed(right.shape), strict=False)
            if a != b and _ONE not in (a, b)
        ]
        a, b = pairs[0]
        reason = (
            f"{ast.unparse(node)!r} broadcasts {dims(left.shape)} against {dims(right.shape)}: "
            f"numpy lines up the last axes, {a} against {b}, so it runs only where {a} = {b}"
        )
        hint = _numpy_hint((left_node, left), (right_node, right))
        if hint:
            reason += f"; as numpy would write it: {hint}"

        def example(sizes):
            return (
                f"at {_sizes_text(sizes)}, {_at(left.shape, sizes)} against "
                f"{_at(right.shape, sizes)} is a broadcasting error in numpy"
            )

        self.mismatch(reason, (left.shape, right.shape), example)

    # ---- calls
    def apply(self, func: str, args: list[Arr], node: ast.Call) -> Arr:
        """An element-wise function: its arguments broadcast as numpy's operators do."""
        exprs, axes = self.broadcast(list(zip(node.args, args, strict=True)), node)
        return Arr(self.function(func, exprs), axes)

    def _call_sum(self, node: ast.Call) -> Arr:
        return self.reduce("sum", node)

    def _call_mean(self, node: ast.Call) -> Arr:
        return self.reduce("mean", node)

    def reduce(self, func: str, node: ast.Call) -> Arr:
        keywords = {k.arg: k.value for k in node.keywords}
        if len(node.args) != 1 or not set(keywords) <= {"axis", "keepdims"}:
            self.fail(f"{func}(expr, axis=..., keepdims=...) takes one expression")
        inner = self.eval(node.args[0])
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
                axes.append((None, _ONE))
        total = total / count if func == "mean" else total
        return Arr(total, tuple(axes))

    def _call_one_hot(self, node: ast.Call) -> Arr:
        if len(node.args) != 1 or not isinstance(node.args[0], ast.Name) or node.keywords:
            self.fail("one_hot(y) takes a labels array")
        key = node.args[0].id
        if key not in self.layer.labels:
            self.fail(f"one_hot: {key!r} is not a labels array")
        shape, classes = self.layer.labels[key]
        axes = tuple((self.fresh(), size) for size in shape)
        column = self.fresh()
        element = self.layer.arrays[key][tuple(i for i, _ in axes)] if axes else None
        if element is None:
            self.fail(f"one_hot: {key} has no axes")
        return Arr(sp.KroneckerDelta(column, element), (*axes, (column, classes)))

    def matmul(self, node: ast.BinOp, a: Arr, b: Arr) -> Arr:
        if not a.axes or not b.axes:
            self.fail(f"{ast.unparse(node)!r}: @ needs arrays on both sides")
        a_axes = a.axes if len(a.axes) > 1 else ((None, _ONE), *a.axes)
        b_axes = b.axes if len(b.axes) > 1 else (*b.axes, (None, _ONE))
        (ai, asize), (bi, bsize) = a_axes[-1], b_axes[-2]
        if asize != bsize:
            text = ast.unparse(node)
            reason = (
                f"{text!r} is {dims(a.shape)} @ {dims(b.shape)}: it contracts {asize} with "
                f"{bsize}, which numpy runs only where {asize} = {bsize}"
            )

            def example(sizes):
                return (
                    f"at {_sizes_text(sizes)}, {_at(a.shape, sizes)} @ {_at(b.shape, sizes)} "
                    "is a shape error in numpy"
                )

            self.mismatch(reason, (a.shape, b.shape), example)
        if ai is None or bi is None:  # a size-1 position contracted (with anything): no sum
            product, summed = a.expr * b.expr, False
        else:
            dummy = self.fresh()
            product, summed = a.expr.xreplace({ai: dummy}) * b.expr.xreplace({bi: dummy}), True
        left, right = Arr(product, a_axes[:-2]), Arr(product, b_axes[:-2])
        if left.axes and right.axes:  # the leading (batch) positions broadcast
            (_, product), lead = self.broadcast([(node.left, left), (node.right, right)], node)
        else:
            lead = left.axes or right.axes
        axes = [*lead]
        if len(a.axes) > 1:
            axes.append(a_axes[-2])
        if len(b.axes) > 1:
            axes.append(b_axes[-1])
        total = sp.Sum(product, (dummy, 0, asize - 1)) if summed else product
        return Arr(total, tuple(axes))

    def _call_einsum(self, node: ast.Call) -> Arr:
        if not node.args or not _literal(node.args[0]) or node.keywords:
            self.fail("einsum('ij,jk->ik', a, b) takes a spec string and the operands")
        spec = ast.literal_eval(node.args[0])
        if not isinstance(spec, str) or spec.count("->") != 1:
            self.fail(f"einsum: spec {spec!r} needs one '->'")
        inputs, output = spec.replace(" ", "").split("->")
        terms = inputs.split(",")
        operands = [self.eval(arg) for arg in node.args[1:]]
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
                    self.fail(f"einsum: {ast.unparse(arg)} has a size-1 (keepdims) axis")
                if letter in letters:
                    symbol, known = letters[letter]
                    if known != size:
                        self._einsum_mismatch(node, letter, known, size, operands)
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

    def _einsum_mismatch(self, node, letter, known, size, operands) -> None:
        shapes = [o.shape for o in operands]
        reason = (
            f"{ast.unparse(node)!r}: letter {letter!r} runs over {known} and over {size}, "
            f"which numpy runs only where {known} = {size}"
        )

        def example(sizes):
            shown = ", ".join(_at(shape, sizes) for shape in shapes)
            return f"at {_sizes_text(sizes)}, einsum of {shown} is a shape error in numpy"

        self.mismatch(reason, shapes, example)


def _numpy_hint(first: tuple[ast.AST, Arr], second: tuple[ast.AST, Arr]) -> str | None:
    """Where an operand of fewer axes has its axes, in order, among the other's (``rinv`` (n,)
    against (n, D): the old reading paired them by name), the subscript numpy needs for
    that pairing: ``rinv[:, None]``."""
    (a_node, a), (b_node, b) = first, second
    short_node, short, long_ = (a_node, a, b) if len(a.axes) < len(b.axes) else (b_node, b, a)
    if len(short.axes) >= len(long_.axes) or any(i is None for i, _ in short.axes):
        return None
    sizes, target = list(short.shape), list(long_.shape)
    if len(set(target)) != len(target) or not set(sizes) <= set(target):
        return None
    at = [target.index(s) for s in sizes]
    if at != sorted(at):
        return None
    slots = [":" if target[k] in sizes else "None" for k in range(at[0], len(target))]
    return f"{paren(ast.unparse(short_node))}[{', '.join(slots)}]"


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False
    return True


def align(
    layer: Layer, key: str, value: Arr, text: str
) -> tuple[sp.Expr | None, ShapeMismatch | None]:
    """The claim's value on input ``key``'s free indices (rule 5), or why its shape is not the
    input's: leading size-1 positions dropped, then broadcast as ``np.broadcast_to`` does."""
    shape = layer.inputs[key]
    axes = list(value.axes)
    while len(axes) > len(shape) and axes[0][0] is None:
        axes.pop(0)
    tail = shape[len(shape) - len(axes) :] if len(axes) <= len(shape) else ()
    fits = len(axes) <= len(shape) and all(
        index is None or size == want for (index, size), want in zip(axes, tail, strict=True)
    )
    if not fits:
        return None, _result_mismatch(layer, key, value.shape, text)
    free = layer.free(shape)[len(shape) - len(axes) :]
    swap = {index: target for (index, _), target in zip(axes, free, strict=True) if index}
    expr = value.expr.xreplace(swap)
    if any(isinstance(x, sp.Dummy) for x in expr.free_symbols):
        raise LayerError(f"claim for {key}: an axis of the claim does not line up with {key}")
    return expr, None


def _result_mismatch(layer: Layer, key: str, got: tuple, text: str) -> ShapeMismatch:
    """The claim's shape against the input's: transposed, or another shape."""
    shape = layer.inputs[key]
    reason = f"the claim is {dims(got)}, {key} is {dims(shape)}: "
    got_sizes = [s for s in got if s != _ONE]
    if (
        len(got) == len(shape)
        and sorted(got, key=str) == sorted(shape, key=str)
        and len(set(shape)) == len(shape)
    ):
        if len(shape) == 2:
            reason += (
                f"as code this is {key}'s gradient transposed; as numpy would write it: "
                f"({text.strip()}).T"
            )
        else:
            perm = tuple(list(got).index(size) for size in shape)
            reason += (
                f"as code this is {key}'s gradient with its axes permuted; as numpy would "
                f"write it: jnp.transpose({text.strip()}, {perm})"
            )
    else:
        extra = [str(s) for s in got_sizes if s not in shape]
        reason += f"as code it is not an array of {key}'s shape"
        if extra:
            reason += f" (reduce axis {extra[0]} with sum(..., axis=k))"
        at = [list(shape).index(s) for s in got if s in shape]
        if (
            not extra
            and len(got) == len(at) < len(shape)
            and at == sorted(at)
            and len(set(shape)) == len(shape)
        ):
            slots = [":" if size in got else "None" for size in shape[at[0] :]]
            reason += f"; as numpy would write it: ({text.strip()})[{', '.join(slots)}]"
    sizes = distinct_sizes(layer, (got, shape))
    example = (
        f"at {_sizes_text(sizes)}, the claim is {_at(got, sizes)} and {key} is {_at(shape, sizes)}"
    )
    return ShapeMismatch(reason, sizes, example)


def read_claim(
    layer: Layer, key: str, text: str | None = None
) -> tuple[sp.Expr | None, ShapeMismatch | None]:
    """The claimed gradient of input ``key`` as an index expression at its free indices, or
    (None, why) when numpy would not give an array of the input's shape at every size."""
    text = layer.claim_text[key] if text is None else text
    where = f"claim for {key} ({text.strip()!r})"
    if is_index_claim(text):
        return read_index_claim(layer, key, text, where), None
    evaluator = ClaimEvaluator(layer, where)
    value = evaluator.run(text)
    if evaluator.mismatches:
        first = evaluator.mismatches[0]
        more = len(evaluator.mismatches) - 1
        if more:
            first = first._replace(reason=f"{first.reason} (and {more} more such place(s))")
        return None, first
    return align(layer, key, value, text)


def is_index_claim(text) -> bool:
    """A claim written as a line in index notation, ``dx[b, s] = sum(...)``."""
    try:
        tree = parse(text, mode="exec")
    except SyntaxError:
        return False
    return len(tree.body) == 1 and isinstance(tree.body[0], ast.Assign)


class _ClaimLine(IndexEvaluator):
    """A claim's right side in index notation: the forward's arrays and the upstream."""

    def base_of(self, key: str) -> sp.IndexedBase:
        if key == str(self.layer.upstream) and not self.layer.is_loss:
            return self.layer.upstream
        return super().base_of(key)


def read_index_claim(layer: Layer, key: str, text: str, where: str) -> sp.Expr:
    """A claim ``d<key>[i, j] = expression`` read as a forward line is (shifted reads zero
    outside the array), its indices running over ``key``'s shape; the expression at the
    gradient's free indices. Only for layers with shifted reads (the rest: numpy's form)."""
    if not layer.exact_only:
        raise LayerError(
            f"{where}: a claim in index notation is for layers with shifted reads (or sizes "
            "declared as expressions); write this one as numpy does (dout @ W.T)"
        )
    left, _, right = text.strip().partition("=")
    target, names = parse_target(left, where)
    shape = layer.inputs[key]
    if fold(target) != f"d{key}" or len(names) != len(shape):
        wanted = f"d{key}[{', '.join(f'i{k}' for k in range(len(shape)))}]"
        raise LayerError(f"{where}: the left side must be {wanted}, one index per axis of {key}")
    tree = parse(right)
    indices = layer._line_indices(tree, f"d{key}", names, where)
    letters = tuple(indices[x] for x in names)
    rhs = _ClaimLine(layer, where, indices).run(right)
    free = rhs.free_symbols & set(indices.values())
    extra = sorted(map(str, free - set(letters)))
    if extra:
        raise LayerError(f"{where}: index {extra[0]} is not reduced: reduce it with sum")
    sizes = index_sizes(rhs, layer, where, indices)
    for letter, size in zip(letters, shape, strict=True):
        if sizes.get(letter, size) != size:
            raise LayerError(
                f"{where}: index {letter} runs over {size} in d{key} and over {sizes[letter]} "
                "on the right"
            )
    expr = fresh_dummies(rhs)
    return expr.xreplace(dict(zip(letters, layer.free(shape), strict=True)))


def claim_expr(layer: Layer, key: str, text: str | None = None) -> sp.Expr:
    """The claimed gradient of input ``key`` as an index expression; a claim of the wrong
    shape is a :class:`LayerError` here (checks go through :func:`read_claim`)."""
    expr, mismatch = read_claim(layer, key, text)
    if mismatch is not None:
        raise LayerError(f"claim for {key}: {mismatch.reason}")
    return expr


__all__ = ["Arr", "ClaimEvaluator", "ShapeMismatch", "align", "claim_expr", "read_claim"]
