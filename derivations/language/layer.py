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
``m[i] = max(x[i, j], j)``, a line of its own, reduces over ``j`` with jax's derivative (the
gradient goes to the max's positions, a tie split evenly); where the output does not depend on
it (the max trick's shift, as in the lecture's cross-entropy) the engine holds ``m`` as an
independent input and proves that, so the gradient through it, zero, is left out exactly. A
claim names the max's positions with ``==``: ``where(x == m[:, None], dout[:, None], 0) /
sum(x == m[:, None], axis=1, keepdims=True)``. The last line is the output;
a scalar output (``loss = ...``) is a loss, any other output receives the upstream gradient,
called ``dout`` unless ``upstream=`` names it.

Inputs listed in ``fixed`` (a 0/1 mask ``M``) are not differentiated; ``labels`` are integer
arrays used as ``one_hot(y[i], j)``; ``constants`` are numbers (``"1/100000"``): each is
assumed to have the sign of its value, nothing more. Functions: ``exp log sqrt tanh erf
sigmoid abs sign relu maximum minimum clip where`` and ``pi``, and the comparisons ``> >= < <= ==``
as 0/1 factors; kinks follow jax (:mod:`derivations.language.functions`, proofs through them:
:mod:`derivations.engine.kinks`).

A position in brackets may be an expression of the line's indices, ``x[b, 2*t + k - P]``,
``x[b, 2*t + c // C, c % C]``: a read outside the array (or at a position that is not an
integer) is zero (:mod:`derivations.language.positions`; decided by
:mod:`derivations.engine.shifts`). ``sizes={"T": "2*T2"}`` declares sizes made of axes (a shape
may also hold ``"2*C"``), ``shapes={"y": ("B", "T")}`` the shape of a line whose index is read
only shifted, and ``check_sizes`` the bounds of the exact check such a layer's claims get
(CHECKED there; PROVED only where a symbolic proof also succeeds); its claims may be lines in
index notation, ``dx[b, s] = sum(dout[b, s - k] * w[k], k)``.

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
from pathlib import Path
from typing import NamedTuple

import sympy as sp

from derivations.language import reshape
from derivations.language.claims import read_claim
from derivations.language.evaluator import OPERATORS, Evaluator, parse
from derivations.language.functions import AxisMax
from derivations.language.names import (
    FREE,
    RESERVED,
    LayerError,
    check_name,
    fold,
    index_symbol,
    keywords_in,
)
from derivations.language.notation import (
    IndexEvaluator,
    free_indices,
    index_sizes,
    parse_target,
)
from derivations.language.positions import InRange, has_shifts

# Layer(check_sizes=...): a bound beyond this is refused (the exact check of shifted reads,
# derivations.engine.shifts, writes every element out)
MAX_BOUND = 8


class Line(NamedTuple):
    """One forward line, ``target[indices] = rhs``, in index notation."""

    target: sp.IndexedBase | sp.Symbol
    indices: tuple[sp.Symbol, ...]  # its free index letters, in the left side's order
    rhs: sp.Expr
    shape: tuple[sp.Symbol, ...]  # its sizes, one per index
    text: str


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
        name = check_name(name, "layer", {}, reserved=frozenset())
        self.name, self.title = name, title or name
        if isinstance(axes, str) or not axes:
            raise LayerError(f"axes {axes!r}: give a tuple of axis names, e.g. ('n', 'D')")
        self.sizes = {}
        for size in axes:
            size = check_name(size, "axis", taken)
            self.sizes[size] = sp.Symbol(size, integer=True, positive=True)
        self.axes = tuple(self.sizes.values())
        self.derived_sizes: dict[str, sp.Expr] = {}
        for size, text in (sizes or {}).items():
            size = check_name(size, "size", taken)
            self.derived_sizes[size] = self._size_expr(text, f"size {size}")
        self.check_sizes = _check_bounds(check_sizes or {}, self.sizes)
        self.constants, self.constant_values = {}, {}
        for key, value in (constants or {}).items():
            key = check_name(key, "constant", taken)
            exact = constant_value(key, value)
            self.constants[key] = _constant_symbol(key, exact)
            self.constant_values[self.constants[key]] = exact
        self.inputs: dict[str, tuple[sp.Symbol, ...]] = {}
        for key, shape in inputs.items():
            key = check_name(key, "input", taken)
            self.inputs[key] = self._shape(key, shape)
        if not self.inputs:
            raise LayerError(f"layer {name}: no inputs")
        self.fixed = tuple(fold(key) if isinstance(key, str) else key for key in fixed)
        for key in self.fixed:
            if key not in self.inputs:
                raise LayerError(f"fixed {key!r}: not an input ({', '.join(self.inputs)})")
        self.labels = {}
        for key, spec in (labels or {}).items():
            key = check_name(key, "labels", taken)
            self.labels[key] = self._label(key, spec)
        self.arrays = {key: sp.IndexedBase(key) for key in [*self.inputs, *self.labels]}
        self.shapes = {**self.inputs, **{key: shape for key, (shape, _) in self.labels.items()}}
        upstream = check_name(upstream, "upstream", taken)
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
        self.reductions: tuple[str, ...] = ()  # max lines differentiated (see `shifts`)
        # whether each max line is known to be a shift or a reduction (engine.derive's
        # with_max_reductions decides it; until then no gradient is derived)
        self.max_decided = not self.max_lines
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
            node = parse(text)
        except SyntaxError as err:
            raise LayerError(f"{owner}: {text!r} is not a size expression like '2*T2'") from err
        size = sp.expand(SizeReader(self.sizes, owner, text).eval(node))
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

    def _line(self, text: str, taken: dict[str, str], where: str | None = None) -> Line:
        where = where or f"forward line {len(self.lines) + 1} ({text.strip()!r})"
        left, sep, right = text.partition("=")
        if not sep:
            raise LayerError(f"{where}: write 'name[i, j] = expression'")
        try:
            call = parse(right)
        except SyntaxError:
            call = None  # reported below, as for any line
        if call is not None and reshape.is_reshape(call):
            return self._reshape_line(left, call, taken, where)
        target, names = parse_target(left, where)
        try:
            target = check_name(target, "intermediate", taken)
        except LayerError as err:
            raise LayerError(f"{where}: {err}") from err
        try:
            tree = parse(right)
        except SyntaxError as err:
            why = keywords_in(right)
            raise LayerError(f"{where}: not an expression: {err.msg}{why}") from err
        indices = self._line_indices(tree, target, names, where)
        letters = tuple(indices[x] for x in names)
        reader = IndexEvaluator(self, where, indices)
        reader.statement = text.strip()
        start = len(left) + 1 + len(right) - len(right.lstrip())  # the right side, parsed stripped
        reader.column_base = start - (len(text) - len(text.lstrip()))
        rhs = reader.run(right)
        if rhs.has(AxisMax) and not isinstance(rhs, AxisMax):
            raise LayerError(f"{where}: max(...) must be a line of its own: m[i] = max(x[i, j], j)")
        free = free_indices(rhs, indices)
        extra = sorted(map(str, free - set(letters)))
        if extra:
            raise LayerError(
                f"{where}: index {extra[0]} is not reduced: keep it on the left "
                f"or reduce it with sum(..., {extra[0]})"
            )
        sizes = index_sizes(rhs, self, where, indices)
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

    def _reshape_line(self, left: str, call: ast.Call, taken: dict, where: str) -> Line:
        """``flat = reshape(x, (B, T2, 2*C))``: the line in index notation that
        :mod:`derivations.language.reshape` writes (row-major positions), its target's shape
        declared as the statement gives it."""
        target, names = parse_target(left, where)
        if names:
            raise LayerError(
                f"{where}: a reshape's target has no indices: flat = reshape(x, (B, T2, 2*C))"
            )
        text, shape = reshape.rewrite(fold(target), call, self, where)
        self.declared[fold(target)] = self._shape(f"reshape {target}", shape)
        return self._line(text, taken, where)

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
        return {name: index_symbol(name) for name in uses}

    def _scalar_name(self, key: str) -> bool:
        """A size, a declared size or a constant: a value in a position, never an index."""
        return key in self.sizes or key in self.derived_sizes or key in self.constants

    # ---- lookups
    @property
    def names(self) -> dict[str, Line]:
        """Named intermediates (and the output), by name."""
        return {str(line.target): line for line in self.lines}

    @property
    def max_lines(self) -> tuple[str, ...]:
        """The lines ``m[i] = max(x[i, j], j)``."""
        return tuple(str(x.target) for x in self.lines if isinstance(x.rhs, AxisMax))

    @property
    def shifts(self) -> tuple[str, ...]:
        """Max lines held as independent inputs by the derivation (the max trick's shift, d
        objective / d m proved 0): every max line not among :attr:`reductions`."""
        return tuple(x for x in self.max_lines if x not in self.reductions)

    def with_reductions(self, names: tuple[str, ...]) -> Layer:
        """The same layer with the max lines ``names`` differentiated as reductions (jax's
        derivative: the gradient to the max's positions, a tie split evenly)."""
        other = copy.copy(self)
        other.reductions = tuple(names)
        other.max_decided = True
        return other

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


class SizeReader(Evaluator):
    """A size as an expression of the axes (``2*T2``, ``L - K + 1``): integers from 0, axis
    names, ``+ - *``; anything else is one line naming it."""

    operators = {op: OPERATORS[op] for op in (ast.Add, ast.Sub, ast.Mult)}

    def __init__(self, sizes: dict[str, sp.Symbol], owner: str, text: str) -> None:
        super().__init__(owner)
        self.sizes, self.text = sizes, text

    def unsupported(self, node: ast.AST):
        raise LayerError(
            f"{self.where}: {ast.unparse(node)!r} in {self.text!r}: a size is integers and "
            f"axes ({', '.join(self.sizes)}) with + - *"
        )

    def _eval_UnaryOp(self, node: ast.UnaryOp):
        return self.unsupported(node)

    def constant(self, node: ast.Constant) -> sp.Expr:
        if type(node.value) is int and node.value >= 0:
            return sp.Integer(node.value)
        return self.unsupported(node)

    def name(self, key: str) -> sp.Expr:
        if fold(key) in self.sizes:
            return self.sizes[fold(key)]
        return self.unsupported(ast.Name(key))


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


def _place_in(path: Path, err: LayerError) -> str:
    """``:line:column`` in the file of an error at a column of a statement (``err.statement``,
    ``err.column``: :meth:`derivations.language.evaluator.Evaluator.fail_at`), where the
    statement's text stands in the file once as written; else nothing."""
    statement, column = getattr(err, "statement", None), getattr(err, "column", None)
    if not statement or column is None:
        return ""
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""
    at = source.find(statement)
    if at < 0 or source.find(statement, at + 1) >= 0:
        return ""
    line = source.count("\n", 0, at) + 1
    start = at - (source.rfind("\n", 0, at) + 1)
    return f":{line}:{start + column + 1}"


def load_layer(path: str | Path) -> Layer:
    """The ``layer`` a Python file defines (``layer = Layer(...)``); one-line errors. The file
    is run as Python: state only layers you trust."""
    path = Path(path)
    if not path.is_file():
        raise LayerError(f"{path}: no such file")
    try:
        namespace = runpy.run_path(str(path), init_globals={"Layer": Layer})
    except LayerError as err:
        raise LayerError(f"{path}{_place_in(path, err)}: {err}") from err
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
