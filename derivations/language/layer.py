"""State your own layer: inputs with symbolic shapes, the forward in index notation, and
optionally your hand-derived gradient of each input, to be proved or refuted.

A layer names its axes, ``axes = ("B", "T", "C")``, any number of them. Every array is indexed
by axes in any order, an axis repeated included: ``x`` (B, T, C), a weight ``W`` (C, H), a
square ``Wr`` (C, C), attention scores (T, T), a gain ``g`` (C,). Any Python identifier that is
not a keyword or a name the language needs (:data:`RESERVED`) names an input, an intermediate or
the output (``q``, ``k``, ``v``, ``m``, ``s``); names are compared as Python reads them (NFKC:
``ｘ`` is ``x``). The forward is a list of lines ``name[i, j] = expression`` in index notation;
a line's index names are whatever identifiers it uses inside brackets (declared by use, any
number); the left side names the indices a line keeps, and every other index on the right must
be reduced with ``sum(expr, j)`` or ``mean(expr, j)`` (or several at once, ``mean(expr, i,
j)``): that is how a statement says which axes are reduced. A name used in one line both as an
array and as an index, or a size or constant used as an index (``x[i, K]``), is an error.
``m[i] = max(x[i, j], j)``, a line of its own, is the max trick's shift: the engine holds ``m``
as an independent input and proves the output does not depend on it (so the gradient through
it, zero, is left out exactly, as in the lecture's cross-entropy). The last line is the output;
a scalar output (``loss = ...``) is a loss, any other output receives the upstream gradient,
called ``dout`` unless ``upstream=`` names it.

Inputs listed in ``fixed`` (a 0/1 mask ``M``) are not differentiated; ``labels`` are integer
arrays used as ``one_hot(y[i], j)``; ``constants`` are numbers (``"1/100000"``): each is
assumed to have the sign of its value, nothing more. Functions: ``exp log sqrt tanh erf
sigmoid abs sign relu maximum minimum clip where`` and ``pi``, and the comparisons ``> >= < <=``
as 0/1 factors; kinks follow jax (:mod:`derivations.language.functions`, proofs through them:
:mod:`derivations.engine.kinks`).

A position in brackets may be an expression of the line's indices, ``x[b, 2*t + k - P]``,
``x[b, 2*t + c // C, c % C]``: a read outside the array (or at a position that is not an
integer) is zero (:mod:`derivations.engine.shifts`). ``sizes={"T": "2*T2"}`` declares sizes made of
axes (a shape may also hold ``"2*C"``), ``shapes={"y": ("B", "T")}`` the shape of a line whose
index is read only shifted, and ``check_sizes`` the bounds of the exact check such a layer's
claims get (CHECKED there; PROVED only where a symbolic proof also succeeds); its claims may be
lines in index notation, ``dx[b, s] = sum(dout[b, s - k] * w[k], k)``.

A claim is an *array* expression in the layer's names, as you would write the backward in numpy
(:mod:`derivations.language.claims`), read as numpy reads it:
``rinv[:, None] * (g * dout - xhat * mean(g * dout * xhat, axis=1, keepdims=True))``,
``dout @ W.T``, ``einsum('btc,ch->bth', x, W)``.

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
index left unreduced, a name Python or the kernel already uses) raise :class:`LayerError`: one
line naming the symbol at fault.
"""

from __future__ import annotations

import ast
import copy
import keyword
import math
import runpy
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import sympy as sp

from derivations.engine.shifts import MAX_BOUND, IndexReader, InRange, has_shifts
from derivations.language.functions import BINARY_FUNCTIONS, FUNCTIONS, AxisMax
from jaxninja.errors import ConfigError

# the free indices of a gradient, one per position of its array (p on axis 0, q on axis 1, ...)
FREE = tuple(sp.Symbol(x, integer=True, nonnegative=True) for x in "pqrsuvw")
# names a statement may not take: the kernel's modules and helpers, the language's own words
RESERVED = {
    "jax",
    "jnp",
    "np",
    "sp",
    "sum",
    "mean",
    "max",
    "one_hot",
    "einsum",
    "pi",
    "axis",
    "keepdims",
    "Layer",
    "load_layer",
    *FUNCTIONS,
    *BINARY_FUNCTIONS,
    "where",
    "clip",
}


class LayerError(ConfigError):
    """A layer statement that cannot be used; the message names the symbol at fault."""


class Line(NamedTuple):
    """One forward line, ``target[indices] = rhs``, in index notation."""

    target: sp.IndexedBase | sp.Symbol
    indices: tuple[sp.Symbol, ...]  # its free index letters, in the left side's order
    rhs: sp.Expr
    shape: tuple[sp.Symbol, ...]  # its sizes, one per index
    text: str


def dims(shape: tuple) -> str:
    """A shape as Python writes it: (n, D), (D,), ()."""
    return str(tuple(map(str, shape))).replace("'", "")


def _index(letter: str) -> sp.Symbol:
    return sp.Symbol(letter, integer=True, nonnegative=True)


def fold(key: str) -> str:
    """A name as Python reads it: NFKC-folded (full-width ``ｘ`` is ``x``), as the parser folds
    every identifier of a forward line, a claim and the kernel."""
    return unicodedata.normalize("NFKC", key)


def _check_name(
    key: str, what: str, taken: dict[str, str], reserved: frozenset | set = RESERVED
) -> str:
    """A statement's name must be a Python identifier the kernel can use as a variable, and
    none of ``reserved`` (a layer's name, only ever a prefix: ``tanh_forward``, reserves none);
    two names are one when they fold together. Returns the name as Python reads it."""
    if not isinstance(key, str) or not key.isidentifier():
        raise LayerError(f"{what} name {key!r} is not a Python identifier")
    name = fold(key)
    if keyword.iskeyword(name) or name in reserved or name.startswith("_"):
        raise LayerError(
            f"{what} name {key!r} is reserved (a Python keyword, or a name the kernel or "
            "the statement language uses)"
        )
    if name in taken:
        same = "" if name == key else f" (Python reads {key!r} as {name!r})"
        raise LayerError(f"{what} name {key!r} is already the name of {taken[name]}{same}")
    taken[name] = f"{what} {key}"
    return name


def constant_value(key: str, value) -> sp.Rational:
    """A constant's exact value: a number, or a string sympy reads as a number (``"1/10"``);
    finite in float64, since the kernel computes with it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise LayerError(f"constant {key}: {value!r} is not a number")
    try:
        exact = sp.nsimplify(str(value), rational=True)
    except (sp.SympifyError, TypeError, ValueError, SyntaxError) as err:
        raise LayerError(f"constant {key}: {value!r} is not a number") from err
    if not (exact.is_Rational or exact.is_Integer):
        raise LayerError(f"constant {key}: {value!r} is not a number")
    if not math.isfinite(float(exact)) or (exact != 0 and float(exact) == 0.0):
        raise LayerError(f"constant {key}: {value!r} does not fit a float64")
    return exact


def _constant_symbol(key: str, value: sp.Rational) -> sp.Symbol:
    """The constant as a symbol assumed to have exactly its value's sign (and nothing else):
    a negative value is never assumed positive."""
    if value > 0:
        return sp.Symbol(key, positive=True)
    if value < 0:
        return sp.Symbol(key, negative=True)
    return sp.Symbol(key, zero=True)


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
        fixed: tuple[str, ...] | list[str] = (),
        sizes: dict[str, str] | None = None,
        shapes: dict[str, tuple[str, ...]] | None = None,
        check_sizes: dict[str, int] | None = None,
    ) -> None:
        taken: dict[str, str] = {}
        name = _check_name(name, "layer", {}, reserved=frozenset())
        self.name, self.title = name, title or name
        if isinstance(axes, str) or not axes:
            raise LayerError(f"axes {axes!r}: give a tuple of axis names, e.g. ('n', 'D')")
        self.sizes = {}
        for size in axes:
            size = _check_name(size, "axis", taken)
            self.sizes[size] = sp.Symbol(size, integer=True, positive=True)
        self.axes = tuple(self.sizes.values())
        self.derived_sizes: dict[str, sp.Expr] = {}
        for size, text in (sizes or {}).items():
            size = _check_name(size, "size", taken)
            self.derived_sizes[size] = self._size_expr(text, f"size {size}")
        self.check_sizes = _check_bounds(check_sizes or {}, self.sizes)
        self.constants, self.constant_values = {}, {}
        for key, value in (constants or {}).items():
            key = _check_name(key, "constant", taken)
            exact = constant_value(key, value)
            self.constants[key] = _constant_symbol(key, exact)
            self.constant_values[self.constants[key]] = exact
        self.inputs: dict[str, tuple[sp.Symbol, ...]] = {}
        for key, shape in inputs.items():
            key = _check_name(key, "input", taken)
            self.inputs[key] = self._shape(key, shape)
        if not self.inputs:
            raise LayerError(f"layer {name}: no inputs")
        self.fixed = tuple(fold(key) if isinstance(key, str) else key for key in fixed)
        for key in self.fixed:
            if key not in self.inputs:
                raise LayerError(f"fixed {key!r}: not an input ({', '.join(self.inputs)})")
        self.labels = {}
        for key, spec in (labels or {}).items():
            key = _check_name(key, "labels", taken)
            self.labels[key] = self._label(key, spec)
        self.arrays = {key: sp.IndexedBase(key) for key in [*self.inputs, *self.labels]}
        self.shapes = {**self.inputs, **{key: shape for key, (shape, _) in self.labels.items()}}
        upstream = _check_name(upstream, "upstream", taken)
        self.upstream = sp.IndexedBase(upstream)
        self.declared = {}  # the shapes of lines whose indices are read only shifted
        for key, shape in (shapes or {}).items():
            self.declared[fold(key) if isinstance(key, str) else key] = self._shape(
                f"shapes[{key!r}]", shape
            )
        self.lines: list[Line] = []
        for text in forward:
            if not isinstance(text, str):
                raise LayerError(f"forward line {len(self.lines) + 1}: {text!r} is not a string")
            self.lines.append(self._line(text, taken))
        if not self.lines:
            raise LayerError(f"layer {name}: the forward has no lines")
        for key in self.declared:
            if key not in self.names:
                raise LayerError(f"shapes[{key!r}]: no forward line defines {key!r}")
        self.output = self.lines[-1]
        self.shifted = any(has_shifts(line.rhs) for line in self.lines)
        # shifted reads, or a size that is an expression of the axes (which the symbolic
        # engine, holding every size a positive symbol, does not handle): decided only by the
        # exact check at concrete sizes (derivations.engine.shifts), CHECKED, never PROVED
        self.exact_only = self.shifted or any(x not in self.axes for x in self.all_sizes)
        if self.exact_only and self.labels:
            raise LayerError(
                f"layer {name}: labels with shifted reads or declared sizes are not supported "
                "(the exact check holds every input as a symbol)"
            )
        for key in self.differentiable:
            grad = f"d{key}"
            if grad in taken and grad != upstream:
                raise LayerError(
                    f"input {key}: its gradient's name {grad!r} is already the name of "
                    f"{taken[grad]}"
                )
        self._set_claims(claims or {})

    # ---- the statement's parts
    def _size(self, size: str, owner: str) -> sp.Expr:
        """An axis, a declared size (``T`` of ``sizes={"T": "2*T2"}``) or an expression of
        axes (``"2*C"``, ``"L - K + 1"``)."""
        size = fold(size) if isinstance(size, str) else size
        if size in self.sizes:
            return self.sizes[size]
        if size in getattr(self, "derived_sizes", {}):
            return self.derived_sizes[size]
        if isinstance(size, str) and not size.isidentifier():
            return self._size_expr(size, owner)
        axes = ", ".join([*self.sizes, *getattr(self, "derived_sizes", {})])
        raise LayerError(f"{owner}: axis {size!r} does not exist (axes: {axes})")

    def _size_expr(self, text, owner: str) -> sp.Expr:
        """A size as an expression of the axes: integers, axis names, ``+ - *`` (``2*T2``)."""
        if not isinstance(text, str):
            raise LayerError(f"{owner}: {text!r} is not a size expression like '2*T2'")
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as err:
            raise LayerError(f"{owner}: {text!r} is not a size expression like '2*T2'") from err

        def value(node: ast.AST) -> sp.Expr:
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
                return sp.Integer(node.value)
            if isinstance(node, ast.Name) and fold(node.id) in self.sizes:
                return self.sizes[fold(node.id)]
            if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult):
                return _BINARY[type(node.op)](value(node.left), value(node.right))
            raise LayerError(
                f"{owner}: {ast.unparse(node)!r} in {text!r}: a size is integers and axes "
                f"({', '.join(self.sizes)}) with + - *"
            )

        size = sp.expand(value(node))
        if size.is_Number:
            raise LayerError(f"{owner}: {text!r} is a number, not a size of the axes")
        return size

    @property
    def all_sizes(self) -> set[sp.Expr]:
        """Every size an array has: each must be at least 1 at the sizes checked."""
        shapes = [*self.shapes.values(), *(line.shape for line in self.lines)]
        return {size for shape in shapes for size in shape} | set(self.derived_sizes.values())

    def _shape(self, key: str, shape: tuple[str, ...] | str) -> tuple[sp.Symbol, ...]:
        if isinstance(shape, str):
            shape = tuple(shape.split())
        if not isinstance(shape, (tuple, list)):
            raise LayerError(f"input {key}: shape {shape!r} is not a tuple of axis names")
        return tuple(self._size(size, f"input {key}") for size in shape)

    def _label(self, key: str, spec) -> tuple[tuple[sp.Symbol, ...], sp.Symbol]:
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
            raise LayerError(f"labels {key}: write (shape, classes axis), e.g. (('n',), 'V')")
        shape, classes = spec
        return self._shape(key, shape), self._size(classes, f"labels {key}")

    def _line(self, text: str, taken: dict[str, str]) -> Line:
        where = f"forward line {len(self.lines) + 1} ({text.strip()!r})"
        left, sep, right = text.partition("=")
        if not sep:
            raise LayerError(f"{where}: write 'name[i, j] = expression'")
        target, names = _parse_target(left, where)
        try:
            target = _check_name(target, "intermediate", taken)
        except LayerError as err:
            raise LayerError(f"{where}: {err}") from err
        try:
            tree = ast.parse(right.strip(), mode="eval").body
        except SyntaxError as err:
            raise LayerError(f"{where}: not an expression: {err.msg}") from err
        indices = self._line_indices(tree, target, names, where)
        letters = tuple(indices[x] for x in names)
        rhs = IndexEvaluator(self, where, indices).run(right)
        if rhs.has(AxisMax) and not isinstance(rhs, AxisMax):
            raise LayerError(
                f"{where}: max(...) is a shift and must be a line of its own: "
                "m[i] = max(x[i, j], j)"
            )
        free = _free_indices(rhs, indices)
        extra = sorted(map(str, free - set(letters)))
        if extra:
            raise LayerError(
                f"{where}: index {extra[0]} is not reduced: keep it on the left "
                f"or reduce it with sum(..., {extra[0]})"
            )
        sizes = _index_sizes(rhs, self, where, indices)
        for letter, size in zip(letters, self.declared.get(target, ()), strict=False):
            if sizes.setdefault(letter, size) != size:
                raise LayerError(
                    f"{where}: shapes[{target!r}] gives index {letter} size {size}, but it "
                    f"runs over {sizes[letter]} on the right"
                )
        if target in self.declared and len(self.declared[target]) != len(letters):
            raise LayerError(
                f"{where}: shapes[{target!r}] has {len(self.declared[target])} sizes, "
                f"{target} has {len(letters)} indices"
            )
        missing = [x for x in letters if x not in sizes]
        if missing:
            shifted = missing[0] in {s for e in rhs.atoms(InRange) for s in e.free_symbols}
            if shifted:
                raise LayerError(
                    f"{where}: index {missing[0]} of {target} is read only shifted, so its "
                    f"range is not known: declare it, shapes={{{target!r}: (...)}}"
                )
            raise LayerError(f"{where}: index {missing[0]} of {target} does not occur on the right")
        shape = tuple(sizes[x] for x in letters)
        base = sp.IndexedBase(target) if letters else sp.Symbol(target)
        return Line(base, letters, rhs, shape, text.strip())

    def _line_indices(
        self, tree: ast.AST, target: str, left: tuple[str, ...], where: str
    ) -> dict[str, sp.Symbol]:
        """The line's index names, declared by use: the left side's, every name inside
        brackets, and the names a ``sum``/``mean``/``max`` reduces or a ``one_hot`` places. A
        name used in the line both as an array (or value) and as an index, or a size or
        constant used as an index (``x[i, K]``), is an error naming both uses."""
        uses: dict[str, str] = {x: f"{target}[{', '.join(left)}]" for x in left}
        values: dict[str, str] = {target: f"{target} (the line's target)"}
        placed: set[int] = set()  # the Name nodes in an index position, or called
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
                for item in (x for x in items if isinstance(x, ast.Name)):
                    uses.setdefault(item.id, ast.unparse(node))
                    placed.add(id(item))
                for item in (x for x in items if not isinstance(x, ast.Name)):
                    for name in (x for x in ast.walk(item) if isinstance(x, ast.Name)):
                        if not self._scalar_name(name.id):  # sizes and constants are values
                            uses.setdefault(name.id, ast.unparse(node))
                            placed.add(id(name))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                placed.add(id(node.func))
                if node.func.id in ("sum", "mean", "max", "one_hot"):
                    for arg in (x for x in node.args[1:] if isinstance(x, ast.Name)):
                        uses.setdefault(arg.id, ast.unparse(node))
                        placed.add(id(arg))
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                values.setdefault(node.value.id, ast.unparse(node))
                placed.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and id(node) not in placed:
                values.setdefault(node.id, node.id)
        for name, use in uses.items():
            if name in values:
                what = "an array" if name in self.arrays or name in self.names else "a value"
                raise LayerError(
                    f"{where}: {name!r} is used both as {what} ({values[name]}) and as an "
                    f"index ({use})"
                )
            what = (
                "a size (an axis)"
                if name in self.sizes
                else "a constant"
                if name in self.constants
                else "a name of the statement language"
                if name in RESERVED or keyword.iskeyword(name)
                else None
            )
            if what is not None:
                raise LayerError(f"{where}: {name!r} in {use} is {what}, not an index")
        return {name: _index(name) for name in uses}

    def _scalar_name(self, key: str) -> bool:
        """A size, a declared size or a constant: a value in a position, never an index."""
        return key in self.sizes or key in self.derived_sizes or key in self.constants

    # ---- lookups
    @property
    def names(self) -> dict[str, Line]:
        """Named intermediates (and the output), by name."""
        return {str(line.target): line for line in self.lines}

    @property
    def shifts(self) -> tuple[str, ...]:
        """Lines ``m[i] = max(x[i, j], j)``: held as independent inputs by the derivation."""
        return tuple(str(x.target) for x in self.lines if isinstance(x.rhs, AxisMax))

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The inputs whose gradients are derived: every input not listed in ``fixed``."""
        return tuple(key for key in self.inputs if key not in self.fixed)

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
        from derivations.language.claims import read_claim

        if not isinstance(claims, dict):
            raise LayerError(f"claims {claims!r}: give a dict, input name -> claim")
        folded = {}
        for key, text in claims.items():
            if not isinstance(key, str):
                raise LayerError(f"claim for {key!r}: not a differentiable input")
            if fold(key) in folded:
                raise LayerError(f"claim for {key!r}: {fold(key)!r} is claimed twice")
            folded[fold(key)] = text
        claims = folded
        for key, text in claims.items():
            if key in self.fixed:
                raise LayerError(f"claim for {key!r}: {key} is fixed (not differentiated)")
            if key not in self.inputs:
                known = ", ".join(self.differentiable)
                raise LayerError(f"claim for {key!r}: not a differentiable input ({known})")
            if not isinstance(text, str):
                raise LayerError(f"claim for {key}: {text!r} is not a string")
        self.claim_text = dict(claims)
        # a claim numpy would not run as an array of its input's shape at every size is kept
        # apart, with why: it is refuted without a derivation of its own
        self.claims, self.mismatches = {}, {}
        for key in self.claim_text:
            expr, mismatch = read_claim(self, key)
            if mismatch is None:
                self.claims[key] = expr
            else:
                self.mismatches[key] = mismatch

    def shape_of(self, key: str) -> tuple[sp.Symbol, ...]:
        """The sizes of an input, label array or intermediate (or of the upstream gradient)."""
        if key in self.shapes:
            return self.shapes[key]
        if key == str(self.upstream) and key not in self.names:
            return self.output.shape
        return self.names[key].shape

    @property
    def is_loss(self) -> bool:
        """A scalar output: its gradient is the gradient of the output itself."""
        return not self.output.indices

    def free(self, shape: tuple[sp.Symbol, ...]) -> tuple[sp.Symbol, ...]:
        """The free indices of an array of ``shape``: p on its axis 0, q on axis 1, ..."""
        if len(shape) > len(FREE):
            raise LayerError(f"an array of rank {len(shape)}: at most {len(FREE)} axes")
        return FREE[: len(shape)]

    def free_sizes(self, shape: tuple[sp.Symbol, ...]) -> dict[sp.Symbol, sp.Symbol]:
        """Each free index of an array of ``shape`` with the size it runs over."""
        return dict(zip(self.free(shape), shape, strict=True))


def _check_bounds(bounds, axes: dict) -> dict[str, int]:
    """``check_sizes``: each named axis's largest size for the exact check of shifted reads."""
    if not isinstance(bounds, dict):
        raise LayerError(f"check_sizes {bounds!r}: give a dict, axis name -> largest size")
    out = {}
    for key, top in bounds.items():
        if not isinstance(key, str) or fold(key) not in axes:
            raise LayerError(f"check_sizes: {key!r} is not an axis ({', '.join(axes)})")
        if type(top) is not int or not 1 <= top <= MAX_BOUND:
            raise LayerError(f"check_sizes[{key!r}]: {top!r} is not an integer in 1..{MAX_BOUND}")
        out[fold(key)] = top
    return out


def _parse_target(left: str, where: str) -> tuple[str, tuple[str, ...]]:
    """The left side ``name[i, j]``: the target's name and its index names (distinct)."""
    try:
        node = ast.parse(left.strip(), mode="eval").body
    except SyntaxError as err:
        raise LayerError(f"{where}: the left side is not 'name[i, j]'") from err
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


def _free_indices(expr: sp.Expr, indices: dict[str, sp.Symbol]) -> set[sp.Symbol]:
    """The line's index symbols still free in ``expr``."""
    return expr.free_symbols & set(indices.values())


def _index_sizes(
    expr: sp.Expr, layer: Layer, where: str, indices: dict[str, sp.Symbol]
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
        try:
            return sp.sympify(self.eval(node))
        except (TypeError, ValueError, ZeroDivisionError, RecursionError) as err:
            raise LayerError(f"{self.where}: cannot evaluate: {err}") from err

    def fail(self, message: str):
        raise LayerError(f"{self.where}: {message}")

    def number(self, node: ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.fail(f"unsupported constant {node.value!r}")
        value = sp.nsimplify(repr(node.value), rational=True)
        if not math.isfinite(float(value)):
            self.fail(f"the number {node.value!r} does not fit a float64")
        return value

    def eval(self, node: ast.AST):
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.eval(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.binary(node)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node.func.id, node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        self.fail(f"unsupported syntax {ast.unparse(node)!r}")

    def compare(self, node: ast.Compare):
        """``a > b`` (``>=``, ``<``, ``<=``): a 0/1 step, never differentiated."""
        from derivations.language.functions import comparison

        if len(node.ops) != 1 or type(node.ops[0]) not in COMPARISONS:
            self.fail(f"{ast.unparse(node)!r}: one comparison of >, >=, <, <=")
        left, right = self.eval(node.left), self.eval(node.comparators[0])
        return comparison(COMPARISONS[type(node.ops[0])], left, right)

    def binary(self, node: ast.BinOp):
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Pow):
            check_power(left, right, ast.unparse(node), self.fail)
        return _BINARY[type(node.op)](left, right)

    def scalar(self, key: str):
        if key in self.layer.sizes:
            return self.layer.sizes[key]
        if key in getattr(self.layer, "derived_sizes", {}):
            return self.layer.derived_sizes[key]
        if key in self.layer.constants:
            return self.layer.constants[key]
        if key == "pi":
            return sp.pi
        return None

    def call(self, func: str, node: ast.Call):
        if func in FUNCTIONS:
            if len(node.args) != 1 or node.keywords:
                self.fail(f"{func}() takes one argument")
            return FUNCTIONS[func](self.eval(node.args[0]))
        if func in BINARY_FUNCTIONS:
            if len(node.args) != 2 or node.keywords:
                self.fail(f"{func}() takes two arguments")
            return BINARY_FUNCTIONS[func](*(self.eval(arg) for arg in node.args))
        if func in ("where", "clip"):
            return self.three(func, node, [self.eval(arg) for arg in node.args])
        self.fail(f"unknown function {func!r}")

    def three(self, func: str, node: ast.Call, args: list):
        """``where(cond, a, b)`` (cond a comparison) and ``clip(x, lo, hi)``, from their
        arguments' values (sympy expressions here, a claim's index expressions there)."""
        from derivations.language.functions import make_clip, where

        if len(node.args) != 3 or node.keywords:
            self.fail(f"{func}() takes three arguments")
        if func == "where":
            if not isinstance(node.args[0], ast.Compare):
                self.fail(f"where: the condition {ast.unparse(node.args[0])!r} is not a comparison")
            return where(*args)
        return make_clip(*args, self.layer.constant_values)


MAX_POWER = 64  # exact verification raises rationals to this power at most (x**(2**100): never)


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


COMPARISONS = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<="}
_BINARY: dict[type, Callable] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


class IndexEvaluator(_Evaluator):
    """A forward line's right side: ``x[i, j]``, ``sum(expr, j)``, ``one_hot(y[i], j)``, with
    the line's index names (:meth:`Layer._line_indices`)."""

    def __init__(self, layer: Layer, where: str, indices: dict[str, sp.Symbol]) -> None:
        super().__init__(layer, where)
        self.indices = indices

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

    def subscript(self, node: ast.Subscript):
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
            position = reader.read(item)  # zero outside the array: see derivations.engine.shifts
            if not position.free_symbols & set(self.indices.values()):
                self.fail(f"{ast.unparse(node)!r}: position {ast.unparse(item)!r} has no index")
            indices.append(position)
            inside *= InRange(position, size)
        return base[tuple(indices)] * inside

    def call(self, func: str, node: ast.Call):
        if func in ("sum", "mean"):
            return self.reduce(func, node)
        if func == "max":
            return self.shift(node)
        if func == "one_hot":
            if len(node.args) != 2 or node.keywords:
                self.fail("one_hot(y[i], j) takes a label element and an index name")
            label = self.eval(node.args[0])
            if not (isinstance(label, sp.Indexed) and str(label.base) in self.layer.labels):
                self.fail(f"one_hot: {label} is not an element of a labels array")
            return sp.KroneckerDelta(self.index(node.args[1], "one_hot"), label)
        return super().call(func, node)

    def shift(self, node: ast.Call) -> AxisMax:
        """``max(expr, j)``: the maximum over one index (a shift, see the module)."""
        if len(node.args) != 2 or node.keywords:
            self.fail("max(expr, j) takes an expression and the one index it reduces")
        body = sp.sympify(self.eval(node.args[0]))
        index = self.index(node.args[1], "max")
        size = _index_sizes(body, self.layer, self.where, self.indices).get(index)
        if size is None or index not in body.free_symbols:
            self.fail(f"max: index {index} does not occur in {body}")
        return AxisMax(body, index, size)

    def reduce(self, func: str, node: ast.Call):
        if len(node.args) < 2 or node.keywords:
            self.fail(f"{func}(expr, j, ...) takes an expression and the indices it reduces")
        body = sp.sympify(self.eval(node.args[0]))
        total, count = body, sp.Integer(1)
        for arg in node.args[1:]:
            index = self.index(arg, func)
            size = _index_sizes(body, self.layer, self.where, self.indices).get(index)
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


def load_layer(path: str | Path) -> Layer:
    """The ``layer`` a Python file defines (``layer = Layer(...)``); one-line errors. The file
    is run as Python: state only layers you trust."""
    path = Path(path)
    if not path.is_file():
        raise LayerError(f"{path}: no such file")
    try:
        namespace = runpy.run_path(str(path), init_globals={"Layer": Layer})
    except LayerError as err:
        raise LayerError(f"{path}: {err}") from err
    except SyntaxError as err:
        raise LayerError(f"{path}:{err.lineno}: syntax error: {err.msg}") from err
    except BaseException as err:  # the file is the user's code: report, don't trace back
        if isinstance(err, KeyboardInterrupt):
            raise
        raise LayerError(f"{path}: {type(err).__name__}: {err}") from err
    layer = namespace.get("layer")
    if not isinstance(layer, Layer):
        raise LayerError(f"{path}: defines no 'layer = Layer(...)'")
    return layer
