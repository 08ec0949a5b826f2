"""State your own layer: inputs with symbolic shapes, the forward in index notation, and
optionally your hand-derived gradient of each input, to be proved or refuted.

A layer lives on (at most) two axes, ``axes = ("n", "D")``: the batch and the features (or
classes). Every array is indexed by a subsequence of them: ``x`` (n, D), a gain ``g`` (D,), a
per-row statistic (n,). The forward is a list of lines ``name[i, j] = expression`` in index
notation (letters ``i j k l m``); the left side names the axes a line keeps, and every other
index on the right must be reduced with ``sum(expr, j)`` or ``mean(expr, j)``: that is how a
statement says which axes are reduced. The last line is the output; a scalar output (``loss =
...``) is a loss, any other output receives the upstream gradient ``upstream`` (``dout``).

A claim is an *array* expression in the layer's names, as you would write the backward in
numpy: ``rinv * (g * dout - xhat * mean(g * dout * xhat, axis=1))``. Arrays broadcast like
keepdims arrays ((n, 1) against (n, D)); ``sum``/``mean`` take ``axis=0`` (batch) or ``axis=1``.

    layer = Layer(
        name="rmsnorm",
        axes=("n", "D"),
        inputs={"x": ("n", "D"), "g": ("D",)},
        constants={"eps": "1/100000"},
        forward=(
            "ms[i] = mean(x[i, j]**2, j)",
            "rinv[i] = (ms[i] + eps)**(-1/2)",
            "xhat[i, j] = x[i, j] * rinv[i]",
            "out[i, j] = g[j] * xhat[i, j]",
        ),
        claims={"g": "sum(dout * xhat, axis=0)"},
    )

Mistakes in a statement (an unknown name, a shape mismatch, an axis that does not exist, an
index left unreduced) raise :class:`LayerError`: one line naming the symbol at fault.
"""

from __future__ import annotations

import ast
import copy
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import sympy as sp

from jaxninja.errors import ConfigError

LETTERS = "ijklm"  # index letters of the forward; p, q are the printer's free indices
FREE = (
    sp.Symbol("p", integer=True, nonnegative=True),
    sp.Symbol("q", integer=True, nonnegative=True),
)
FUNCTIONS = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "tanh": sp.tanh}


class LayerError(ConfigError):
    """A layer statement that cannot be used; the message names the symbol at fault."""


class Line(NamedTuple):
    """One forward line, ``target[indices] = rhs``, in index notation."""

    target: sp.IndexedBase | sp.Symbol
    indices: tuple[sp.Symbol, ...]  # its free index letters, in axis order
    rhs: sp.Expr
    shape: tuple[sp.Symbol, ...]  # its sizes, a subsequence of the layer's axes
    text: str


def dims(shape: tuple) -> str:
    """A shape as Python writes it: (n, D), (D,), ()."""
    return str(tuple(map(str, shape))).replace("'", "")


def _index(letter: str) -> sp.Symbol:
    return sp.Symbol(letter, integer=True, nonnegative=True)


class Layer:
    """A layer stated by a person: see the module docstring for the statement's form."""

    def __init__(
        self,
        name: str,
        axes: tuple[str, ...],
        inputs: dict[str, tuple[str, ...]],
        forward: tuple[str, ...] | list[str],
        upstream: str = "dout",
        labels: dict[str, tuple[str, str]] | None = None,
        constants: dict[str, str | float] | None = None,
        claims: dict[str, str] | None = None,
        title: str = "",
    ) -> None:
        if not name.isidentifier():
            raise LayerError(f"layer name {name!r} is not a Python identifier")
        self.name, self.title = name, title or name
        if not 1 <= len(axes) <= 2:
            raise LayerError(f"axes {axes!r}: one or two axes (batch, features) are supported")
        self.sizes = {size: sp.Symbol(size, integer=True, positive=True) for size in axes}
        self.axes = tuple(self.sizes.values())
        self.constants = {
            key: sp.Symbol(key, positive=True) for key in (constants or {})
        }  # positive: eps, a temperature, a smoothing weight
        self.constant_values = {
            self.constants[key]: sp.nsimplify(str(value), rational=True)
            for key, value in (constants or {}).items()
        }
        self.inputs = {key: self._shape(key, shape) for key, shape in inputs.items()}
        self.labels = {key: self._label(key, *spec) for key, spec in (labels or {}).items()}
        self.arrays = {key: sp.IndexedBase(key) for key in [*self.inputs, *self.labels]}
        self.shapes = {**self.inputs, **{key: shape for key, (shape, _) in self.labels.items()}}
        self.upstream = sp.IndexedBase(upstream)
        self.lines: list[Line] = []
        for text in forward:
            self.lines.append(self._line(text))
        if not self.lines:
            raise LayerError(f"layer {name}: the forward has no lines")
        self.output = self.lines[-1]
        self._set_claims(claims or {})

    # ---- the statement's parts
    def _size(self, size: str, owner: str) -> sp.Symbol:
        if size not in self.sizes:
            axes = ", ".join(self.sizes)
            raise LayerError(f"{owner}: axis {size!r} does not exist (axes: {axes})")
        return self.sizes[size]

    def _shape(self, key: str, shape: tuple[str, ...] | str) -> tuple[sp.Symbol, ...]:
        if not key.isidentifier():
            raise LayerError(f"input name {key!r} is not an identifier")
        shape = tuple(shape.split()) if isinstance(shape, str) else tuple(shape)
        sizes = tuple(self._size(size, f"input {key}") for size in shape)
        self._check_layout(key, sizes)
        return sizes

    def _label(self, key: str, shape, classes: str) -> tuple[tuple[sp.Symbol, ...], sp.Symbol]:
        return self._shape(key, shape), self._size(classes, f"labels {key}")

    def _check_layout(self, key: str, sizes: tuple[sp.Symbol, ...]) -> None:
        """Arrays index the axes in the layer's order (the kernel's layout: batch on axis 0)."""
        positions = [self.axes.index(size) for size in sizes]
        if positions != sorted(set(positions)):
            order = ", ".join(map(str, self.axes))
            raise LayerError(f"{key}: shape {dims(sizes)} is not in axis order ({order})")

    def _line(self, text: str) -> Line:
        where = f"forward line {len(self.lines) + 1} ({text.strip()!r})"
        left, sep, right = text.partition("=")
        if not sep:
            raise LayerError(f"{where}: write 'name[i, j] = expression'")
        target, letters = _parse_target(left, where)
        if target in self.arrays or target in self.names or target in self.sizes:
            raise LayerError(f"{where}: {target} is already defined")
        rhs = IndexEvaluator(self, where).run(right)
        free = _free_indices(rhs)
        extra = sorted(map(str, free - set(letters)))
        if extra:
            raise LayerError(
                f"{where}: index {extra[0]} is not reduced: keep it on the left "
                f"or reduce it with sum(..., {extra[0]})"
            )
        sizes = _index_sizes(rhs, self, where)
        missing = [x for x in letters if x not in sizes]
        if missing:
            raise LayerError(f"{where}: index {missing[0]} of {target} does not occur on the right")
        shape = tuple(sizes[x] for x in letters)
        self._check_layout(target, shape)
        base = sp.IndexedBase(target) if letters else sp.Symbol(target)
        return Line(base, letters, rhs, shape, text.strip())

    # ---- lookups
    @property
    def names(self) -> dict[str, Line]:
        """Named intermediates (and the output), by name."""
        return {str(line.target): line for line in self.lines}

    def without_claims(self) -> Layer:
        """The same layer with no claims: its kernel then prints every derived gradient."""
        return self.with_claims({})

    def with_claims(self, claims: dict[str, str], title: str | None = None) -> Layer:
        """The same forward with other claims (e.g. a classic mistake), checked like the first."""
        other = copy.copy(self)
        other.title = self.title if title is None else title
        other._set_claims(claims)
        return other

    def _set_claims(self, claims: dict[str, str]) -> None:
        """Parse each claim now, so a mistake in one is reported before any derivation."""
        for key in claims:
            if key not in self.inputs:
                known = ", ".join(self.inputs)
                raise LayerError(f"claim for {key!r}: not a differentiable input ({known})")
        self.claim_text = dict(claims)
        self.claims = {key: claim_expr(self, key) for key in self.claim_text}

    def shape_of(self, key: str) -> tuple[sp.Symbol, ...]:
        """The sizes of an input, label array or intermediate."""
        return self.shapes[key] if key in self.shapes else self.names[key].shape

    @property
    def is_loss(self) -> bool:
        """A scalar output: its gradient is the gradient of the output itself."""
        return not self.output.indices

    def free(self, shape: tuple[sp.Symbol, ...]) -> tuple[sp.Symbol, ...]:
        """The free indices of an array of ``shape``: p on the first axis, q on the second."""
        return tuple(FREE[self.axes.index(size)] for size in shape)


def _parse_target(left: str, where: str) -> tuple[str, tuple[sp.Symbol, ...]]:
    try:
        node = ast.parse(left.strip(), mode="eval").body
    except SyntaxError as err:
        raise LayerError(f"{where}: the left side is not 'name[i, j]'") from err
    if isinstance(node, ast.Name):
        return node.id, ()
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if all(isinstance(x, ast.Name) and x.id in LETTERS for x in items):
            letters = tuple(_index(x.id) for x in items)
            if len(set(letters)) == len(letters):
                return node.value.id, letters
    raise LayerError(f"{where}: the left side is not 'name[i, j]' with letters from {LETTERS}")


def _free_indices(expr: sp.Expr) -> set[sp.Symbol]:
    letters = {_index(x) for x in LETTERS}
    return {x for x in expr.free_symbols if x in letters}


def _index_sizes(expr: sp.Expr, layer: Layer, where: str) -> dict[sp.Symbol, sp.Symbol]:
    """Each index letter's size, from the arrays it indexes; a letter on two sizes is an error."""
    sizes: dict[sp.Symbol, tuple[sp.Symbol, str]] = {}

    def note(index, size, used):
        if not (isinstance(index, sp.Symbol) and index in {_index(x) for x in LETTERS}):
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
    for delta in expr.atoms(sp.KroneckerDelta):
        label = next(x for x in delta.args if isinstance(x, sp.Indexed))
        other = next(x for x in delta.args if x is not label)
        note(other, layer.labels[str(label.base)][1], f"one_hot({label}, {other})")
    return {index: size for index, (size, _) in sizes.items()}


class _Evaluator:
    """Evaluates a restricted Python expression (names, numbers, + - * / **, calls) to sympy;
    anything else is a one-line :class:`LayerError` naming the construct."""

    def __init__(self, layer: Layer, where: str) -> None:
        self.layer, self.where = layer, where

    def run(self, text: str) -> sp.Expr:
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as err:
            raise LayerError(f"{self.where}: not an expression: {err.msg}") from err
        return sp.sympify(self.eval(node))

    def fail(self, message: str):
        raise LayerError(f"{self.where}: {message}")

    def eval(self, node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return sp.nsimplify(repr(node.value), rational=True)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.eval(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node.func.id, node)
        self.fail(f"unsupported syntax {ast.unparse(node)!r}")

    def scalar(self, key: str):
        if key in self.layer.sizes:
            return self.layer.sizes[key]
        if key in self.layer.constants:
            return self.layer.constants[key]
        return None

    def call(self, func: str, node: ast.Call):
        if func in FUNCTIONS:
            if len(node.args) != 1 or node.keywords:
                self.fail(f"{func}() takes one argument")
            return FUNCTIONS[func](self.eval(node.args[0]))
        self.fail(f"unknown function {func!r}")


_BINARY: dict[type, Callable] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


class IndexEvaluator(_Evaluator):
    """A forward line's right side: ``x[i, j]``, ``sum(expr, j)``, ``one_hot(y[i], j)``."""

    def name(self, key: str):
        value = self.scalar(key)
        if value is not None:
            return value
        if key in self.layer.names and not self.layer.names[key].indices:
            return self.layer.names[key].target
        if key in self.layer.arrays or key in self.layer.names:
            self.fail(f"{key} is an array: index it, e.g. {key}[i, j]")
        if key in LETTERS:
            return _index(key)
        self.fail(f"unknown symbol {key!r}")

    def subscript(self, node: ast.Subscript):
        if not isinstance(node.value, ast.Name):
            self.fail(f"cannot index {ast.unparse(node.value)!r}")
        key = node.value.id
        if key in self.layer.arrays:
            base = self.layer.arrays[key]
        elif key in self.layer.names and self.layer.names[key].indices:
            base = self.layer.names[key].target
        else:
            self.fail(f"unknown array {key!r}")
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        shape = self.layer.shape_of(key)
        if len(items) != len(shape):
            self.fail(f"shape mismatch: {key} has shape {dims(shape)}, indexed with {len(items)}")
        indices = [self.eval(item) for item in items]
        for item, index in zip(items, indices, strict=True):
            if not (isinstance(index, sp.Symbol) and str(index) in LETTERS):
                self.fail(f"{key}[...]: index {ast.unparse(item)!r} is not a letter of {LETTERS}")
        return base[tuple(indices)]

    def call(self, func: str, node: ast.Call):
        if func in ("sum", "mean"):
            return self.reduce(func, node)
        if func == "one_hot":
            if len(node.args) != 2:
                self.fail("one_hot(y[i], j) takes a label element and an index letter")
            label, index = (self.eval(arg) for arg in node.args)
            if not (isinstance(label, sp.Indexed) and str(label.base) in self.layer.labels):
                self.fail(f"one_hot: {label} is not an element of a labels array")
            return sp.KroneckerDelta(index, label)
        return super().call(func, node)

    def reduce(self, func: str, node: ast.Call):
        if len(node.args) != 2 or node.keywords:
            self.fail(f"{func}(expr, j) takes an expression and the index letter it reduces")
        body, index = (self.eval(arg) for arg in node.args)
        if not (isinstance(index, sp.Symbol) and str(index) in LETTERS):
            self.fail(f"{func}: {index} is not an index letter of {LETTERS}")
        size = _index_sizes(sp.sympify(body), self.layer, self.where).get(index)
        if size is None:
            self.fail(f"{func}: index {index} does not occur in {body}")
        total = sp.Sum(body, (index, 0, size - 1))
        return total / size if func == "mean" else total


class ArrayEvaluator(_Evaluator):
    """A claim: an array expression in the layer's names, evaluated at the free indices p, q;
    ``sum(expr, axis=a)`` sums the free index of axis ``a`` out under a fresh dummy."""

    counter = 0

    def name(self, key: str):
        value = self.scalar(key)
        if value is not None:
            return value
        if key == str(self.layer.upstream):
            if self.layer.is_loss:
                self.fail(f"{key}: the output is a loss, there is no upstream gradient")
            return self.layer.upstream[self.layer.free(self.layer.output.shape)]
        if key in self.layer.arrays or key in self.layer.names:
            shape = self.layer.shape_of(key)
            base = self.layer.arrays.get(key)
            base = base if base is not None else self.layer.names[key].target
            return base[self.layer.free(shape)] if shape else base
        self.fail(f"unknown symbol {key!r}")

    def subscript(self, node: ast.Subscript):
        self.fail(f"{ast.unparse(node)!r}: a claim uses whole arrays, not elements")

    def call(self, func: str, node: ast.Call):
        if func in ("sum", "mean"):
            return self.reduce(func, node)
        if func == "one_hot":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                self.fail("one_hot(y) takes a labels array")
            key = node.args[0].id
            if key not in self.layer.labels:
                self.fail(f"one_hot: {key!r} is not a labels array")
            shape, classes = self.layer.labels[key]
            row = self.layer.free(shape)
            return sp.KroneckerDelta(self.layer.free((classes,))[0], self.layer.arrays[key][row])
        return super().call(func, node)

    def reduce(self, func: str, node: ast.Call):
        keywords = {k.arg: k.value for k in node.keywords}
        if len(node.args) != 1 or set(keywords) != {"axis"}:
            self.fail(f"{func}(expr, axis=a) takes an expression and axis=0 or axis=1")
        axis = self.eval(keywords["axis"])
        if axis not in range(len(self.layer.axes)):
            self.fail(f"{func}: axis {axis} does not exist (the layer has {len(self.layer.axes)})")
        body = sp.sympify(self.eval(node.args[0]))
        free, size = FREE[int(axis)], self.layer.axes[int(axis)]
        ArrayEvaluator.counter += 1
        dummy = sp.Symbol(f"a{ArrayEvaluator.counter}", integer=True, nonnegative=True)
        total = sp.Sum(body.xreplace({free: dummy}), (dummy, 0, size - 1))
        return total / size if func == "mean" else total


def claim_expr(layer: Layer, key: str, text: str | None = None) -> sp.Expr:
    """The claimed gradient of input ``key`` as an index expression at the free indices p, q;
    an axis the input lacks must have been reduced (a shape mismatch otherwise)."""
    text = layer.claim_text[key] if text is None else text
    where = f"claim for {key} ({text.strip()!r})"
    expr = ArrayEvaluator(layer, where).run(text)
    allowed = set(layer.free(layer.inputs[key]))
    extra = [x for x in FREE if x in expr.free_symbols and x not in allowed]
    if extra:
        axis = FREE.index(extra[0])
        size = layer.axes[axis]
        raise LayerError(
            f"{where}: shape mismatch: {key} has shape {dims(layer.inputs[key])} but the claim "
            f"keeps axis {axis} ({size}); reduce it with sum(..., axis={axis})"
        )
    return expr


def load_layer(path: str | Path) -> Layer:
    """The ``layer`` a Python file defines (``layer = Layer(...)``); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise LayerError(f"{path}: no such file")
    try:
        namespace = runpy.run_path(str(path), init_globals={"Layer": Layer})
    except LayerError as err:
        raise LayerError(f"{path}: {err}") from err
    except SyntaxError as err:
        raise LayerError(f"{path}:{err.lineno}: syntax error: {err.msg}") from err
    except Exception as err:  # the file is the user's code: report, don't trace back
        raise LayerError(f"{path}: {type(err).__name__}: {err}") from err
    layer = namespace.get("layer")
    if not isinstance(layer, Layer):
        raise LayerError(f"{path}: defines no 'layer = Layer(...)'")
    return layer
