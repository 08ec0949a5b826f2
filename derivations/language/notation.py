"""Index notation, the forward's language, read into sympy: ``x[i, j]`` is an element,
``sum(e, j)`` and ``mean(e, i, j)`` are sums over the line's indices, ``one_hot(y[i], j)`` a
Kronecker delta, ``max(e, j)`` the max trick's shift; the functions are
:mod:`derivations.language.functions`', the walk :mod:`derivations.language.evaluator`'s.

:class:`SympyEvaluator` reads what every sympy reading shares (numbers as exact rationals,
sizes, constants and ``pi`` as symbols, the operators, comparisons as 0/1 steps, the functions);
:class:`IndexEvaluator` adds the arrays of one forward line (or a claim in index notation).
"""

from __future__ import annotations

import ast

import sympy as sp

from derivations.language.evaluator import ExprEvaluator, check_power, number, parse
from derivations.language.functions import (
    BINARY_FUNCTIONS,
    FUNCTIONS,
    AxisMax,
    comparison,
    make_clip,
    where,
)
from derivations.language.names import LayerError, dims, keywords_in
from derivations.language.positions import IndexReader, InRange


class SympyEvaluator(ExprEvaluator):
    """A statement's expression to sympy: the layer's sizes, constants and ``pi`` by name
    (:meth:`scalar`); a subclass names its arrays (:meth:`name`)."""

    def __init__(self, layer, where: str) -> None:
        super().__init__(where)
        self.layer = layer

    def constant(self, node: ast.Constant) -> sp.Expr:
        return number(node.value, self.fail)

    def binary(self, node: ast.BinOp, left, right):
        if isinstance(node.op, ast.Pow):
            check_power(left, right, ast.unparse(node), self.fail)
        return super().binary(node, left, right)

    def finite(self, node: ast.BinOp, value):
        """``dout / 0`` is sympy's complex infinity ``zoo`` (``0 / 0`` its ``nan``), which no
        proof or kernel should meet: one error line naming the operation and its column."""
        expr = sp.sympify(getattr(value, "expr", value))
        if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            what = "division by zero" if isinstance(node.op, ast.Div) else "an infinite value"
            self.fail_at(node, f"{what}: {ast.unparse(node)!r} is not a finite number")
        return value

    def compare(self, symbol: str, left, right, node: ast.Compare) -> sp.Expr:
        """``a > b`` (``>=``, ``<``, ``<=``): a 0/1 step, never differentiated."""
        return comparison(symbol, left, right)

    def apply(self, func: str, args: list, node: ast.Call) -> sp.Expr:
        return self.function(func, args)

    def function(self, func: str, args: list) -> sp.Expr:
        """An element-wise function at sympy arguments (index expressions, here or in a
        claim): ``clip`` learns its bounds' signs from the layer's constants."""
        if func in FUNCTIONS:
            return FUNCTIONS[func](*args)
        if func in BINARY_FUNCTIONS:
            return BINARY_FUNCTIONS[func](*args)
        if func == "where":
            return where(*args)
        return make_clip(*args, self.layer.constant_values)

    def scalar(self, key: str):
        """A size, a declared size, a constant or ``pi``; None for any other name."""
        if key in self.layer.sizes:
            return self.layer.sizes[key]
        if key in getattr(self.layer, "derived_sizes", {}):
            return self.layer.derived_sizes[key]
        if key in self.layer.constants:
            return self.layer.constants[key]
        if key == "pi":
            return sp.pi
        return None


class IndexEvaluator(SympyEvaluator):
    """A forward line's right side: ``x[i, j]``, ``sum(expr, j)``, ``one_hot(y[i], j)``, with
    the line's index names (:meth:`derivations.language.layer.Layer._line_indices`)."""

    def __init__(self, layer, where: str, indices: dict[str, sp.Symbol]) -> None:
        super().__init__(layer, where)
        self.indices = indices

    def run(self, text: str) -> sp.Expr:
        return sp.sympify(super().run(text))

    def name(self, key: str):
        value = self.scalar(key)
        if value is not None:
            return value
        if key in self.layer.names and not self.layer.names[key].indices:
            return self.layer.names[key].target
        if key in self.layer.arrays or key in self.layer.names:
            self.fail(f"{key} is an array: index it, e.g. {key}[i, j]")
        self.fail(f"unknown symbol {key!r}")

    def index(self, node: ast.AST, what: str) -> sp.Symbol:
        """An index name of this line (``j`` in ``sum(e, j)``); anything else is an error."""
        if not (isinstance(node, ast.Name) and node.id in self.indices):
            self.fail(f"{what}: {ast.unparse(node)!r} is not an index name")
        return self.indices[node.id]

    def base_of(self, key: str) -> sp.IndexedBase:
        """The array a subscript reads: an input, a label array or an intermediate."""
        if key in self.layer.arrays:
            return self.layer.arrays[key]
        if key in self.layer.names and self.layer.names[key].indices:
            return self.layer.names[key].target
        self.fail(f"unknown array {key!r}")

    def _eval_Subscript(self, node: ast.Subscript):
        if not isinstance(node.value, ast.Name):
            self.fail(f"cannot index {ast.unparse(node.value)!r}")
        key = node.value.id
        base = self.base_of(key)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        shape = self.layer.shape_of(key)
        if len(items) != len(shape):
            self.fail(f"shape mismatch: {key} has shape {dims(shape)}, indexed with {len(items)}")
        reader = IndexReader(self.indices, self.scalar, self.layer.constant_values, self.fail)
        indices, inside = [], sp.Integer(1)
        for item, size in zip(items, shape, strict=True):
            if isinstance(item, ast.Name):
                indices.append(self.index(item, f"{key}[...]"))
                continue
            position = reader.read(item)  # zero outside the array: see language.positions
            if not position.free_symbols & set(self.indices.values()):
                self.fail(f"{ast.unparse(node)!r}: position {ast.unparse(item)!r} has no index")
            indices.append(position)
            inside *= InRange(position, size)
        return base[tuple(indices)] * inside

    def _call_sum(self, node: ast.Call):
        return self.reduce("sum", node)

    def _call_mean(self, node: ast.Call):
        return self.reduce("mean", node)

    def _call_one_hot(self, node: ast.Call):
        if len(node.args) != 2 or node.keywords:
            self.fail("one_hot(y[i], j) takes a label element and an index name")
        label = self.eval(node.args[0])
        if not (isinstance(label, sp.Indexed) and str(label.base) in self.layer.labels):
            self.fail(f"one_hot: {label} is not an element of a labels array")
        return sp.KroneckerDelta(self.index(node.args[1], "one_hot"), label)

    def _call_max(self, node: ast.Call) -> AxisMax:
        """``max(expr, j)``: the maximum over an index (``max(expr, j, k)``: over several at
        once); a shift or a reduction, see :class:`derivations.language.functions.AxisMax`."""
        if not 2 <= len(node.args) <= 5 or node.keywords:
            self.fail("max(expr, j, ...) takes an expression and the indices it reduces (1 to 4)")
        body = sp.sympify(self.eval(node.args[0]))
        flat = []
        for arg in node.args[1:]:
            index = self.index(arg, "max")
            size = index_sizes(body, self.layer, self.where, self.indices).get(index)
            if size is None or index not in body.free_symbols:
                self.fail(f"max: index {index} does not occur in {body}")
            if index in flat[::2]:
                self.fail(f"max: index {index} is reduced twice")
            flat += [index, size]
        return AxisMax(body, *flat)

    def reduce(self, func: str, node: ast.Call):
        if len(node.args) < 2 or node.keywords:
            self.fail(f"{func}(expr, j, ...) takes an expression and the indices it reduces")
        body = sp.sympify(self.eval(node.args[0]))
        total, count = body, sp.Integer(1)
        for arg in node.args[1:]:
            index = self.index(arg, func)
            size = index_sizes(body, self.layer, self.where, self.indices).get(index)
            if size is None and index in body.free_symbols:
                self.fail(
                    f"{func}: index {index} is read only shifted, so its range is not known: "
                    f"read it plainly once (w[{index}])"
                )
            if size is None:
                self.fail(f"{func}: index {index} does not occur in {body}")
            total = sp.Sum(total, (index, 0, size - 1))
            count *= size
        return total / count if func == "mean" else total


def parse_target(left: str, where: str) -> tuple[str, tuple[str, ...]]:
    """The left side ``name[i, j]``: the target's name and its index names (distinct)."""
    try:
        node = parse(left)
    except SyntaxError as err:
        why = keywords_in(left)
        raise LayerError(f"{where}: the left side is not 'name[i, j]'{why}") from err
    if isinstance(node, ast.Name):
        return node.id, ()
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if all(isinstance(x, ast.Name) for x in items):
            names = tuple(x.id for x in items)
            if len(set(names)) == len(names):
                return node.value.id, names
            raise LayerError(f"{where}: an index repeats on the left side")
    raise LayerError(f"{where}: the left side is not 'name[i, j]' with one name per index")


def free_indices(expr: sp.Expr, indices: dict[str, sp.Symbol]) -> set[sp.Symbol]:
    """The line's index symbols still free in ``expr``."""
    return expr.free_symbols & set(indices.values())


def index_sizes(
    expr: sp.Expr, layer, where: str, indices: dict[str, sp.Symbol]
) -> dict[sp.Symbol, sp.Symbol]:
    """Each index's size, from the arrays it indexes; an index on two sizes is an error."""
    sizes: dict[sp.Symbol, tuple[sp.Symbol, str]] = {}
    letters = set(indices.values())

    def note(index, size, used):
        if not (isinstance(index, sp.Symbol) and index in letters):
            return
        old = sizes.setdefault(index, (size, used))
        if old[0] != size:
            raise LayerError(
                f"{where}: shape mismatch: index {index} runs over {old[0]} in {old[1]} "
                f"and over {size} in {used}"
            )

    for element in sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key):
        shape = layer.shape_of(str(element.base))
        for index, size in zip(element.indices, shape, strict=True):
            note(index, size, str(element))
    for delta in sorted(expr.atoms(sp.KroneckerDelta), key=sp.default_sort_key):
        label = next(x for x in delta.args if isinstance(x, sp.Indexed))
        other = next(x for x in delta.args if x is not label)
        note(other, layer.labels[str(label.base)][1], f"one_hot({label}, {other})")
    for total in expr.atoms(sp.Sum):  # a summed index keeps the size it was summed over
        for dummy, _, high in total.limits:
            note(dummy, high + 1, f"sum over {dummy}")
    return {index: size for index, (size, _) in sizes.items()}


def fresh_dummies(expr: sp.Expr) -> sp.Expr:
    """Every sum's and max's dummy renamed to a fresh one, so an instantiated definition never
    captures the indices it is placed at."""

    def rename(total: sp.Sum) -> sp.Sum:
        function, limits = total.function, []
        for dummy, low, high in total.limits:
            new = sp.Dummy(str(dummy), integer=True, nonnegative=True)
            function = function.xreplace({dummy: new})
            limits.append((new, low, high))
        return sp.Sum(function, *limits)

    def rename_max(top: AxisMax) -> AxisMax:
        return top.renamed(
            {x: sp.Dummy(str(x), integer=True, nonnegative=True) for x in top.indices}
        )

    expr = expr.replace(lambda x: isinstance(x, sp.Sum), rename)
    return expr.replace(lambda x: isinstance(x, AxisMax), rename_max)
