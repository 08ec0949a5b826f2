"""Derive a stated layer's gradients for symbolic sizes, and prove or refute a claimed one.

The forward is written out in the layer's raw inputs (each intermediate replaced by its
definition, with fresh summation dummies), differentiated element-wise with respect to each
input at its free indices (p, q, r, ... one per axis of the input), its delta sums collapsed
(:func:`derivations.engine.collapse.collapse`) and products of sums merged (:func:`merged_sums`). A
claim is written out the same way and compared with
:func:`derivations.engine.proofs.prove_with_difference` (``simplify`` with sums held opaque, plus an
exact random-rational point). A claim that is not proved is refuted with a concrete
counterexample: the smallest sizes (:func:`size_grid`, within its budgets) at which, with
exact rational inputs, the exact derivative of the written-out forward
(:func:`derivations.engine.exact.written_out`) and the claim differ; with none, it is NOT PROVED.
:func:`undefined_sizes` names the sizes where the forward or the claim is undefined.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import NamedTuple

import sympy as sp

from derivations.engine import kinks, shifts
from derivations.engine.collapse import collapse
from derivations.engine.exact import differs, exact_derivative, written_out
from derivations.engine.proofs import Proof, prove_with_difference
from derivations.language.claims import ShapeMismatch
from derivations.language.functions import KINKS, AxisMax, kink_arguments
from derivations.language.layer import Layer
from derivations.language.names import FREE, LayerError
from derivations.language.notation import fresh_dummies

MAX_SIZE = 4  # counterexamples are searched with every size in 1..MAX_SIZE
MAX_TOTAL = 9  # and the sizes' sum at most MAX_TOTAL (3 axes: up to (3, 3, 3)), smallest first
SEARCH_SECONDS = 20.0  # and within this much time; past it, the claim is NOT PROVED, not PROVED
MAX_OPS = 20_000  # a forward written out in its inputs beyond this many operations is refused
MAX_GRADIENT_NODES = 5_000  # a derived gradient larger than this is refused (the largest
# example's is 896 nodes; a 6-line tanh chain each line using the last twice has 100,000, and
# its kernel took 40 s to compile)
DRAWS = 5  # inputs are redrawn this often when a draw lands on a kink (relu(0), a tie)


# ---------------------------------------------------------------- writing the forward out
def normal_dummies(expr: sp.Expr, depth: int = 0) -> sp.Expr:
    """Each sum's dummy renamed after its nesting depth (``i0``, ``i1``, ...): sums equal up to
    their dummies' names become identical, so the proofs can treat them as one symbol.

    One pass from the root down, each dummy looked up in the scope that binds it: a sum's
    dummy is never renamed by ``xreplace`` into a name an inner sum binds (that captured the
    inner dummy and turned ``B[i0, i1]`` into the diagonal ``B[i1, i1]``). ``depth``: the names
    ``i0`` .. ``i{depth-1}`` are taken by enclosing sums (free in ``expr``)."""
    return _renumbered(expr, {}, depth)


def _renumbered(expr: sp.Expr, scope: dict, depth: int) -> sp.Expr:
    """:func:`normal_dummies`' pass: ``scope`` maps each bound dummy to its new name."""
    if isinstance(expr, AxisMax):  # binds its indices as a sum does
        scope = dict(scope)
        for index in expr.indices:
            scope[index] = sp.Symbol(f"i{depth}", integer=True, nonnegative=True)
            depth += 1
        flat = [x for index, size in expr.pairs for x in (scope[index], size)]
        return AxisMax(_renumbered(expr.body, scope, depth), *flat)
    if isinstance(expr, sp.Sum):
        scope = dict(scope)
        names = []
        for dummy, _, _ in expr.limits:
            scope[dummy] = sp.Symbol(f"i{depth}", integer=True, nonnegative=True)
            names.append(scope[dummy])
            depth += 1
        limits = [
            (new, _renumbered(low, scope, depth), _renumbered(high, scope, depth))
            for new, (_, low, high) in zip(names, expr.limits, strict=True)
        ]
        return sp.Sum(_renumbered(expr.function, scope, depth), *limits)
    if isinstance(expr, sp.Symbol):
        return scope.get(expr, expr)
    if not expr.args:
        return expr
    args = [_renumbered(arg, scope, depth) for arg in expr.args]
    if all(new is old for new, old in zip(args, expr.args, strict=True)):
        return expr
    return expr.func(*args)


def raw(expr: sp.Expr, layer: Layer) -> sp.Expr:
    """``expr`` with every named intermediate replaced by its definition in the raw inputs;
    a chain whose written-out form passes :data:`MAX_OPS` operations (each line using the last
    twice doubles it) is a one-line error, not minutes of silence. Each result is kept with
    the layer (as :func:`objective`'s): a claim was written out three times a check."""
    return _cached(layer, ("raw", expr), lambda: _raw(expr, layer))


def _cached(layer: Layer, what: tuple, make):
    """``make()``, kept on ``layer`` for its forward lines and shifts (shared by the layer's
    copies, which share its lines; an entry made for other lines is never returned)."""
    cache = layer.__dict__.setdefault("_written", {})
    key = (*what, id(layer.lines), layer.shifts)
    entry = cache.get(key)
    if entry is None or entry[0] is not layer.lines:
        entry = cache[key] = (layer.lines, make())
    return entry[1]


def _raw(expr: sp.Expr, layer: Layer) -> sp.Expr:
    """:func:`raw`, written out."""
    lines = {k: v for k, v in layer.names.items() if k not in layer.shifts}  # shifts: inputs
    for _ in range(len(lines) + 1):
        if _nodes(expr, MAX_OPS) > MAX_OPS:
            raise LayerError(
                f"layer {layer.name}: the forward written out in its inputs passes {MAX_OPS} "
                "nodes: its chain of lines grows too fast to derive (reuse fewer lines twice)"
            )
        new = expr.replace(
            lambda x: (
                (isinstance(x, sp.Indexed) and str(x.base) in lines)
                or (  # a scalar line's own symbol: an index or dummy of that name is not it
                    isinstance(x, sp.Symbol)
                    and str(x) in lines
                    and not lines[str(x)].indices
                    and x == lines[str(x)].target
                )
            ),
            lambda x: _instance(lines[str(x.base if isinstance(x, sp.Indexed) else x)], x),
        )
        if new == expr:
            return new
        expr = new
    return expr


def _nodes(expr: sp.Expr, cap: int) -> int:
    """The expression tree's size, counted no further than ``cap`` + 1 (cheap when huge)."""
    count = 0
    for _ in sp.preorder_traversal(expr):
        count += 1
        if count > cap:
            break
    return count


def _instance(line, element: sp.Expr) -> sp.Expr:
    at = element.indices if isinstance(element, sp.Indexed) else ()
    return fresh_dummies(line.rhs).xreplace(dict(zip(line.indices, at, strict=True)))


def objective(layer: Layer) -> sp.Expr:
    """The scalar whose gradient is the backward: the loss, or sum(upstream * output).

    Written out once per layer and set of shifts, then reused (a run asked for it about 26
    times, each rebuilding every ``tanh`` through sympy's assumptions: 1.6 of a layer's 9 s of
    profiled CPU), kept as :func:`raw`'s results are."""
    return _cached(layer, ("objective",), lambda: _objective(layer))


def _objective(layer: Layer) -> sp.Expr:
    """:func:`objective`, written out."""
    if layer.is_loss:
        return raw(layer.output.target, layer)
    indices = tuple(
        sp.Dummy(f"o{k}", integer=True, nonnegative=True) for k in range(len(layer.output.shape))
    )
    body = layer.upstream[indices] * raw(layer.output.target[indices], layer)
    limits = [(index, 0, size - 1) for index, size in zip(indices, layer.output.shape, strict=True)]
    return sp.Sum(body, *limits)


def wrt(layer: Layer, key: str) -> sp.Indexed:
    """The element of input ``key`` a gradient is taken with respect to: x[p, q], g[q]."""
    return layer.arrays[key][layer.free(layer.inputs[key])]


# ---------------------------------------------------------------- derive, prove, refute
class Counterexample(NamedTuple):
    """Sizes and exact inputs at which the claim and the true gradient differ."""

    sizes: dict[sp.Symbol, int]
    element: sp.Indexed  # the gradient element that differs, e.g. x[1, 0]
    inputs: dict[sp.Expr, sp.Expr]  # every input element -> an exact rational (or label)
    truth: sp.Expr  # the exact derivative, exact value
    claim: sp.Expr  # the claim, exact value
    skipped: tuple[str, ...]  # smaller sizes where the claim is undefined (division by zero)


class Verdict(NamedTuple):
    """One input's gradient: derived, and the claim's fate."""

    key: str
    derived: sp.Expr  # collapsed, in the raw inputs, dummies normalised
    claim: sp.Expr | None  # the claim in index notation (names kept)
    proof: Proof | None
    difference: sp.Expr | None  # simplify(derived - claim), when not proved
    counterexample: Counterexample | None
    seconds: float
    undefined: tuple[str, ...] = ()  # where the claim or the forward is undefined, in words
    searched: str = ""  # what the counterexample search covered, in words
    mismatch: ShapeMismatch | None = None  # a claim of the wrong shape as numpy reads it
    # the bounds of an exact check that passed ("L <= 6, K <= 3"): with proof.ok False this is
    # CHECKED (exact at every size in that range, not for every size), never PROVED
    checked: str = ""
    kinked: bool = False  # PROVED away from the kinks (the case split of derivations.engine.kinks)


def merged_sums(expr: sp.Expr) -> sp.Expr:
    """Products of sums written as one sum over all their indices, the limits in a canonical
    order: ``Sum(W1[q, k] * Sum(dout[p, l] * W2[k, l], l), k)`` and ``Sum(W1[q, k] * W2[k, l] *
    dout[p, l], l, k)`` become the same sum, so the proofs' opaque sums match. Each pulled
    sum's dummies are renamed fresh first, so no index is ever captured."""
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[merged_sums(arg) for arg in expr.args])
    body, limits = merged_sums(expr.function), list(expr.limits)
    while True:
        inner = [f for f in sp.Mul.make_args(body) if isinstance(f, sp.Sum)]
        if not inner:
            break
        total = inner[0]
        rest = sp.Mul(*[f for f in sp.Mul.make_args(body) if f is not total])
        # fresh dummies: two sums of one term may share a dummy (d(S**2) = 2 * S * S')
        renamed = {d: sp.Dummy(str(d), integer=True, nonnegative=True) for d, _, _ in total.limits}
        function = total.function.xreplace(renamed)
        new_limits = [(renamed[d], low, high) for d, low, high in total.limits]
        body, limits = rest * function, [*limits, *new_limits]
    if isinstance(body, sp.Add):  # a sum of terms: one sum per term
        return sp.Add(*[merged_sums(sp.Sum(term, *limits)) for term in body.args])
    return _canonical_limits(body, limits)


def _canonical_limits(body: sp.Expr, limits: list) -> sp.Sum:
    """The ordering of the limits whose normalised form sorts first (at most 4! tried)."""
    if len(limits) == 1 or len(limits) > 4:
        return sp.Sum(body, *limits)
    options = [sp.Sum(body, *order) for order in itertools.permutations(limits)]
    return min(options, key=lambda x: sp.default_sort_key(normal_dummies(x)))


def derive(layer: Layer, key: str) -> sp.Expr:
    """d objective / d key[p, q, ...] for symbolic sizes, collapsed, in the raw inputs; one
    larger than :data:`MAX_GRADIENT_NODES` is a one-line error (the size budget)."""
    derivative = sp.diff(objective(layer), wrt(layer, key))
    # checked before the delta sums are collapsed too (the examples' are under 340 nodes):
    # collapsing a huge derivative is what takes the minutes
    derived = derivative
    if _nodes(derivative, MAX_GRADIENT_NODES) <= MAX_GRADIENT_NODES:
        derived = normal_dummies(merged_sums(collapse(derivative)))
    if _nodes(derived, MAX_GRADIENT_NODES) > MAX_GRADIENT_NODES:
        raise LayerError(
            f"layer {layer.name}: the derived gradient d{key} has more than "
            f"{MAX_GRADIENT_NODES:,} nodes, past the size budget (a chain of lines each using the "
            "last multiplies its terms; its kernel would take minutes to compile): state fewer "
            "or simpler lines"
        )
    return derived


def written(expr: sp.Expr, layer: Layer) -> sp.Expr:
    """A claim in the raw inputs, collapsed and normalised like the derivation."""
    return normal_dummies(merged_sums(collapse(raw(expr, layer))))


def check(layer: Layer, key: str) -> Verdict:
    """Derive the gradient of ``key``; prove the claim, or refute it with a counterexample.
    A max line not yet decided to be a shift or a reduction is decided first
    (:func:`with_max_reductions`): held as an input unproved, it could hide a gradient."""
    start = time.perf_counter()
    layer = with_max_reductions(layer)
    derived = derive(layer, key)
    claim = proof = diff = example = None
    searched, kinked = "", False
    parts = {"the forward": objective(layer)}
    if key in layer.mismatches:  # refuted by its shape: never proved, never printed
        seconds = time.perf_counter() - start
        proof = Proof(False, False)
        return Verdict(
            key, derived, None, proof, None, None, seconds, mismatch=layer.mismatches[key]
        )
    if layer.exact_only:
        return _check_shifted(layer, key, derived, start)
    if key in layer.claim_text:
        claim = layer.claims[key]
        claim_raw = written(claim, layer)
        parts["the claim"] = raw(claim, layer)
        proof, difference = prove_with_difference(derived, claim_raw)
        if not proof.ok and proof.point and kinked_identity(layer, derived, claim_raw):
            proof, difference, kinked = Proof(True, True), sp.S.Zero, True
        if not proof.ok:
            diff = difference
            example, searched = counterexample(layer, key, claim)
    undefined = undefined_sizes(layer, parts)
    seconds = time.perf_counter() - start
    verdict = Verdict(key, derived, claim, proof, diff, example, seconds, undefined, searched)
    return verdict._replace(kinked=kinked)


def _check_shifted(layer: Layer, key: str, derived: sp.Expr, start: float) -> Verdict:
    """A layer with shifted reads (or declared sizes): the claim decided exactly at every
    size up to the stated bounds (:func:`derivations.engine.shifts.check_exactly`), CHECKED there,
    and PROVED only where a symbolic proof also succeeds. The derived form is shown with its
    affine deltas summed out (an identity: :func:`derivations.engine.shifts.readable`)."""
    shown = shifts.readable(layer, key, derived)
    if key not in layer.claim_text:
        return Verdict(key, shown, None, None, None, None, time.perf_counter() - start)
    claim = layer.claims[key]
    found = shifts.check_exactly(layer, key, raw(claim, layer))
    proof = Proof(False, found.complete)  # not proved for every size: proof.ok stays False
    # PROVED only where the exact check found nothing wrong and a symbolic proof agrees
    if found.complete and shifts.prove_shifted(layer, key, derived, written(claim, layer)):
        proof = Proof(True, True)
    seconds = time.perf_counter() - start
    checked = found.bounds if found.complete else ""
    return Verdict(
        key,
        shown,
        claim,
        proof,
        None,  # no symbolic difference: the exact check decides (its counterexample below)
        found.counterexample,
        seconds,
        searched=found.searched,
        checked=checked,
    )


def kinked_identity(layer: Layer, derived: sp.Expr, claim: sp.Expr) -> bool:
    """A derivative and a claim with kinks (steps, ``sign``, ``where``, ``clip``) equal away
    from the kinks, at the stated constants (:func:`derivations.engine.kinks.zero`), where no kink's
    argument vanishes for every input at some size (:func:`derivations.engine.kinks.degenerate`)."""
    if not (derived.atoms(*KINKS) or claim.atoms(*KINKS)):
        return False
    difference = derived - claim
    proved, arguments = kinks.zero(difference, layer.constant_values)
    if not proved:
        return False
    free = [x for x in FREE if x in difference.free_symbols]
    grid = [sizes for sizes in size_grid(layer) if max(sizes.values()) <= 2]

    def value_at(z: sp.Expr, sizes: dict, rng) -> sp.Expr:
        concrete = {**sizes, **{index: 0 for index in free}}
        out = written_out(z.xreplace(concrete))
        return out.xreplace({a: kinks._draw(rng) for a in out.atoms(sp.Indexed)})

    return not kinks.degenerate(
        sorted(arguments, key=sp.default_sort_key), value_at, grid, layer.name
    )


def _unproved_shifts(layer: Layer) -> list[tuple[int, str]]:
    """The shift lines (line number, name) for which d objective / d m is not proved 0."""
    out = []
    for number, line in enumerate(layer.lines, 1):
        if str(line.target) not in layer.shifts:
            continue
        element = line.target[layer.free(line.shape)] if line.indices else line.target
        derivative = normal_dummies(merged_sums(collapse(sp.diff(objective(layer), element))))
        proof, _ = prove_with_difference(derivative, sp.S.Zero)
        if not proof.ok:
            out.append((number, str(line.target)))
    return out


def shift_problems(layer: Layer) -> list[str]:
    """For each shift line ``m[i] = max(x[i, j], j)``: the derivation holds ``m`` as an input,
    which is exact only when the output does not depend on it; one line per shift for which
    d objective / d m is not proved 0 (an empty list: every shift is exact). The lecture's
    statements (:mod:`derivations.build`) allow only shifts."""
    return [
        f"forward line {number} ({layer.lines[number - 1].text!r}): max(...) is supported "
        f"there only as a shift the output does not depend on, and d objective / d {name} is "
        "not proved 0"
        for number, name in _unproved_shifts(layer)
    ]


def with_max_reductions(layer: Layer) -> Layer:
    """``layer`` with every max line the output depends on differentiated as a reduction
    (jax's derivative), the others held as shifts (d objective / d m proved 0, so leaving
    their gradient out is exact). Decided again until no shift changes: a shift proved with
    another max held fixed is proved once more with that max a reduction."""
    if layer.max_decided:
        return layer
    while True:
        unproved = _unproved_shifts(layer)
        if not unproved:
            return layer.with_reductions(layer.reductions)  # decided: every shift proved
        if layer.exact_only:  # the exact check of shifted reads has no max's derivative
            number, name = unproved[0]
            raise LayerError(
                f"layer {layer.name}: forward line {number} ({layer.lines[number - 1].text!r}): "
                f"the output depends on the max {name}, and a max differentiated is not "
                "supported with shifted reads or declared sizes (only as a shift)"
            )
        layer = layer.with_reductions((*layer.reductions, *(name for _, name in unproved)))


# ---------------------------------------------------------------- where sizes are undefined
def _size_only(expr: sp.Expr, layer: Layer) -> bool:
    symbols = expr.free_symbols
    return bool(symbols & set(layer.axes)) and symbols <= set(layer.axes) | set(
        layer.constants.values()
    )


def _hazards(expr: sp.Expr, layer: Layer) -> list[tuple[sp.Expr, str]]:
    """Sub-expressions in the sizes alone that must not vanish (a denominator, ``"zero"``),
    be negative (a fractional power, ``"negative"``) or be at most zero (a log, ``"log"``)."""
    found = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Pow) and _size_only(node.base, layer):
            if node.exp.is_negative:
                found.append((node.base, "zero"))
            if not node.exp.is_integer:
                found.append((node.base, "negative"))
        elif isinstance(node, sp.log) and _size_only(node.args[0], layer):
            found.append((node.args[0], "log"))
    return found


def _bad_sizes(base: sp.Expr, kind: str, layer: Layer) -> list[int] | None:
    """The sizes >= 1 where ``base`` breaks the rule ``kind`` (exactly: from the polynomial's
    real roots, beyond which its sign is fixed); None when undecidable here (several sizes)."""
    base = sp.factor(base.xreplace(layer.constant_values))
    symbols = sorted(base.free_symbols, key=str)
    if len(symbols) != 1 or not base.is_polynomial(symbols[0]):
        return None
    (size,) = symbols
    roots = [r for r in sp.Poly(base, size).real_roots()]
    if kind == "zero":
        return sorted({int(r) for r in roots if r.is_integer and r >= 1})
    top = max([1, *(int(sp.ceiling(r)) for r in roots)]) + 1

    def bad(value: int) -> bool:
        at = base.subs(size, value)
        return bool(at < 0) if kind == "negative" else bool(at <= 0)

    return [value for value in range(1, top + 1) if bad(value)]


def undefined_sizes(layer: Layer, parts: dict[str, sp.Expr]) -> tuple[str, ...]:
    """Where each part (the forward, the claim) is undefined for lack of a size: a division
    by ``n - 1`` at n = 1, a ``sqrt(n - 2)``; each in words, e.g. ``the claim at n = 1, 2``."""
    out: list[str] = []
    rules = {"zero": "= 0", "negative": "< 0", "log": "<= 0"}
    seen: set = set()  # a hazard the forward has is the forward's, not also the claim's
    for name, expr in parts.items():
        at: dict[sp.Symbol, set[int]] = {}
        hazards = set(_hazards(expr, layer)) - seen
        seen |= hazards
        for base, kind in sorted(hazards, key=sp.default_sort_key):
            bad = _bad_sizes(base, kind, layer)
            if bad is None:
                out.append(f"{name} where {base} {rules[kind]}")
            elif bad:
                (size,) = base.free_symbols & set(layer.axes)
                at.setdefault(size, set()).update(bad)
        for size, values in at.items():
            out.append(f"{name} at {size} = {', '.join(map(str, sorted(values)))}")
    return tuple(dict.fromkeys(out))


# ---------------------------------------------------------------- concrete counterexamples
def size_grid(layer: Layer) -> list[dict[sp.Symbol, int]]:
    """Concrete sizes in the stated order: every size in 1..MAX_SIZE and their sum at most
    MAX_TOTAL; the smallest sum first, then the first axis smallest (n = 1 before D = 1)."""
    grid = [
        dict(zip(layer.axes, values, strict=True))
        for values in itertools.product(range(1, MAX_SIZE + 1), repeat=len(layer.axes))
        if sum(values) <= max(MAX_TOTAL, len(layer.axes))
    ]
    return sorted(grid, key=lambda sizes: (sum(sizes.values()), tuple(sizes.values())))


def concrete_inputs(
    layer: Layer, sizes: dict, seed: str, ties: bool = False
) -> dict[sp.Expr, sp.Expr]:
    """Exact small non-zero rationals for every float input element, integers for labels;
    ``ties``: every float element 1 or 2, so a max over a few of them is most often a tie."""
    rng = random.Random(seed)
    values: dict[sp.Expr, sp.Expr] = {}
    arrays = [*layer.inputs.items(), *((k, s) for k, (s, _) in layer.labels.items())]
    arrays += [(key, layer.names[key].shape) for key in layer.shifts]  # any shift is exact
    if not layer.is_loss:
        arrays.append((str(layer.upstream), layer.output.shape))
    for key, shape in arrays:
        base = sp.IndexedBase(key)
        concrete = (int(sp.sympify(size).xreplace(sizes)) for size in shape)  # T = 2*T2
        for at in itertools.product(*map(range, concrete)):
            element = base[at] if at else base
            if key in layer.labels:
                values[element] = sp.Integer(rng.randrange(sizes[layer.labels[key][1]]))
            elif ties:
                values[element] = sp.Integer(rng.randint(1, 2))
            else:
                sign = rng.choice([-1, 1])
                values[element] = sp.Rational(sign * rng.randint(1, 9), rng.randint(1, 4))
    return values


def _finite(value: sp.Expr) -> bool:
    return value.is_finite is not False and not value.has(sp.nan, sp.zoo, sp.oo, -sp.oo)


def at_sizes(expr: sp.Expr, layer: Layer, sizes: dict, inputs: dict) -> sp.Expr:
    """An index expression at concrete sizes and inputs: sums written out, exact."""
    concrete = {**sizes, **layer.constant_values}
    out = written_out(expr.xreplace(concrete))
    labels = {k: v for k, v in inputs.items() if _is_label(k, layer)}
    return out.xreplace(labels).xreplace(inputs)


def _on_a_kink(total: sp.Expr, inputs: dict) -> bool:
    """A drawn point where some relu/abs argument or maximum's a - b is exactly 0."""
    return any(arg.xreplace(inputs) == 0 for arg in kink_arguments(total))


def counterexample(layer: Layer, key: str, claim: sp.Expr) -> tuple[Counterexample | None, str]:
    """The smallest sizes (in :func:`size_grid`'s order, within :data:`SEARCH_SECONDS`) where
    the claim and the exact derivative differ, or None; and what was searched, in words."""
    skipped: list[str] = []
    claim_raw = raw(claim, layer)
    undefined = _undefined_at(layer, claim_raw)  # known without writing anything out
    start = time.perf_counter()
    grid = size_grid(layer)
    tried = 0
    for sizes in grid:
        if time.perf_counter() - start > SEARCH_SECONDS:
            break
        tried += 1
        if any((axis, size) in undefined for axis, size in sizes.items()):
            skipped.append(", ".join(f"{k}={v}" for k, v in sizes.items()))
            continue
        found = _search_at(layer, key, claim_raw, sizes, skipped)
        if found is not None:
            return found, ""
    largest = ", ".join(f"{a} <= {MAX_SIZE}" for a in layer.axes)
    budget = "all" if tried == len(grid) else f"{tried} (time budget {SEARCH_SECONDS:g} s)"
    return None, f"{budget} of {len(grid)} size combinations ({largest}; sum <= {MAX_TOTAL})"


def exact_agreement(layer: Layer, key: str, limit: int = 2) -> tuple[list[dict], str | None]:
    """An independent check of a proved claim: at the first ``limit`` sizes of
    :func:`size_grid` with every axis at least 2 (a size 1 hides a transposed or unsummed
    axis) where the forward and the claim are defined, every element of the claim
    evaluated exactly against the exact derivative of the written-out forward (no delta
    collapse, no ``simplify``). Returns the sizes checked, and a line saying where they
    differ (None: they agree everywhere checked)."""
    layer = with_max_reductions(layer)
    claim_raw = raw(layer.claims[key], layer)
    undefined = _undefined_at(layer, claim_raw) | _undefined_at(layer, objective(layer))
    checked: list[dict] = []
    for sizes in size_grid(layer):
        if len(checked) == limit:
            break
        if min(sizes.values()) < 2 or any(pair in undefined for pair in sizes.items()):
            continue
        skipped: list[str] = []
        found = _search_at(layer, key, claim_raw, sizes, skipped)
        if found is not None:
            where = ", ".join(f"{k}={v}" for k, v in sizes.items())
            return checked, f"d{found.element} differs at {where}: {found.truth} vs {found.claim}"
        if not skipped:
            checked.append(sizes)
    return checked, None


def _undefined_at(layer: Layer, expr: sp.Expr) -> set[tuple[sp.Symbol, int]]:
    """(axis, size) pairs at which ``expr`` divides by zero whatever the other sizes."""
    out = set()
    for base, kind in _hazards(expr, layer):
        if kind == "zero" and len(base.free_symbols & set(layer.axes)) == 1:
            (axis,) = base.free_symbols & set(layer.axes)
            out |= {(axis, size) for size in _bad_sizes(base, kind, layer) or ()}
    return out


def _search_at(layer: Layer, key: str, claim_raw, sizes: dict, skipped: list):
    """One size combination: every element of the gradient at one drawn point off the kinks,
    and, where a max is differentiated, at a second point of ties (each input 1 or 2: jax
    splits a tie's gradient evenly, and a claim must too). The forward is written out only once
    the claim is known to be defined here."""
    found = _search_point(layer, key, claim_raw, sizes, skipped, ties=False)
    if found is None and objective(layer).has(AxisMax):
        found = _search_point(layer, key, claim_raw, sizes, skipped, ties=True)
    return found


def _search_point(layer: Layer, key: str, claim_raw, sizes: dict, skipped: list, ties: bool):
    """:func:`_search_at` at one drawn point (of ties, or not)."""
    objective_expr = objective(layer)
    kinked = bool(objective_expr.atoms(*KINKS))
    total = inputs = None
    for draw in range(DRAWS):
        seed = f"{layer.name}/{sorted((str(k), v) for k, v in sizes.items())}/{draw}"
        seed += "/ties" if ties else ""
        inputs = concrete_inputs(layer, sizes, seed, ties)
        if not kinked:
            break
        labels = {k: v for k, v in inputs.items() if _is_label(k, layer)}
        total = at_sizes(objective_expr, layer, sizes, {}).xreplace(labels)
        if not _on_a_kink(total, inputs):
            break
    else:
        return None  # every draw on a kink: no point of differentiability found here
    for at in itertools.product(*(range(sizes[size]) for size in layer.inputs[key])):
        element = layer.arrays[key][at]
        point = dict(zip(wrt(layer, key).indices, at, strict=True))
        value = at_sizes(claim_raw.xreplace(point), layer, sizes, inputs)
        if not _finite(value):
            skipped.append(", ".join(f"{k}={v}" for k, v in sizes.items()))
            return None
        if total is None:
            labels = {k: v for k, v in inputs.items() if _is_label(k, layer)}
            total = at_sizes(objective_expr, layer, sizes, {}).xreplace(labels)
        truth = exact_derivative(total, element, inputs)
        if not _finite(truth):
            return None  # the forward is undefined here
        if differs(truth, value):
            return Counterexample(sizes, element, inputs, truth, value, tuple(skipped))
    return None


def _is_label(element: sp.Expr, layer: Layer) -> bool:
    base = element.base if isinstance(element, sp.Indexed) else element
    return str(base) in layer.labels
