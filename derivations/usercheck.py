"""Derive a stated layer's gradients for symbolic sizes, and prove or refute a claimed one.

The forward is written out in the layer's raw inputs (each intermediate replaced by its
definition, with fresh summation dummies), differentiated element-wise with respect to each
input at the free indices p, q, and its delta sums collapsed (:func:`derivations.collapse.
collapse`). A claim is written out the same way and compared with
:func:`derivations.proofs.prove_equal` (``simplify`` with sums held opaque, plus an exact
random-rational point). A claim that is not proved is refuted with a concrete counterexample:
the smallest sizes at which, with exact rational inputs, the exact derivative of the
written-out forward (:func:`derivations.brute.written_out`) and the claim differ.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import NamedTuple

import sympy as sp

from derivations.brute import written_out
from derivations.collapse import collapse
from derivations.proofs import Proof, opaque_sums, prove_equal
from derivations.userlayer import Layer

DIGITS = 50
ZERO = sp.Float("1e-30", DIGITS)  # 50-digit evaluation of an exact value; zero reads ~1e-50
MAX_BATCH = 4  # counterexamples are searched at n = 1..MAX_BATCH
MAX_OTHER = 3  # and the other sizes at 1..MAX_OTHER


# ---------------------------------------------------------------- writing the forward out
def fresh_dummies(expr: sp.Expr) -> sp.Expr:
    """Every sum's dummy renamed to a fresh one, so an instantiated definition never captures
    the indices it is placed at."""

    def rename(total: sp.Sum) -> sp.Sum:
        function, limits = total.function, []
        for dummy, low, high in total.limits:
            new = sp.Dummy(str(dummy), integer=True, nonnegative=True)
            function = function.xreplace({dummy: new})
            limits.append((new, low, high))
        return sp.Sum(function, *limits)

    return expr.replace(lambda x: isinstance(x, sp.Sum), rename)


def normal_dummies(expr: sp.Expr, depth: int = 0) -> sp.Expr:
    """Each sum's dummy renamed after its nesting depth (``i0``, ``i1``, ...): sums equal up to
    their dummies' names become identical, so the proofs can treat them as one symbol."""
    if isinstance(expr, sp.Sum):
        function, limits = expr.function, []
        for dummy, low, high in expr.limits:
            new = sp.Symbol(f"i{depth}", integer=True, nonnegative=True)
            function = function.xreplace({dummy: new})
            limits.append((new, low, high))
            depth += 1
        return sp.Sum(normal_dummies(function, depth), *limits)
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    return expr.func(*[normal_dummies(arg, depth) for arg in expr.args])


def raw(expr: sp.Expr, layer: Layer) -> sp.Expr:
    """``expr`` with every named intermediate replaced by its definition in the raw inputs."""
    lines = layer.names
    for _ in range(len(lines) + 1):
        new = expr.replace(
            lambda x: (
                (isinstance(x, sp.Indexed) and str(x.base) in lines)
                or (isinstance(x, sp.Symbol) and str(x) in lines and not lines[str(x)].indices)
            ),
            lambda x: _instance(lines[str(x.base if isinstance(x, sp.Indexed) else x)], x),
        )
        if new == expr:
            return new
        expr = new
    return expr


def _instance(line, element: sp.Expr) -> sp.Expr:
    at = element.indices if isinstance(element, sp.Indexed) else ()
    return fresh_dummies(line.rhs).xreplace(dict(zip(line.indices, at, strict=True)))


def objective(layer: Layer) -> sp.Expr:
    """The scalar whose gradient is the backward: the loss, or sum(upstream * output)."""
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


def derive(layer: Layer, key: str) -> sp.Expr:
    """d objective / d key[p, q] for symbolic sizes, collapsed, in the raw inputs."""
    derivative = sp.diff(objective(layer), wrt(layer, key))
    return normal_dummies(collapse(derivative))


def written(expr: sp.Expr, layer: Layer) -> sp.Expr:
    """A claim in the raw inputs, collapsed and normalised like the derivation."""
    return normal_dummies(collapse(raw(expr, layer)))


def difference(derived: sp.Expr, claim: sp.Expr) -> sp.Expr:
    """``derived - claim`` simplified, each sum held as one opaque symbol meanwhile."""
    sums = sorted((derived - claim).atoms(sp.Sum), key=sp.default_sort_key)
    opaque = opaque_sums(derived - claim)
    back = {sp.Symbol(f"S{idx}"): total for idx, total in enumerate(sums)}
    return sp.factor_terms(sp.simplify(opaque)).xreplace(back)


def check(layer: Layer, key: str) -> Verdict:
    """Derive the gradient of ``key``; prove the claim, or refute it with a counterexample."""
    start = time.perf_counter()
    derived = derive(layer, key)
    claim = proof = diff = example = None
    if key in layer.claim_text:
        claim = layer.claims[key]
        claim_raw = written(claim, layer)
        proof = prove_equal(derived, claim_raw)
        if not proof.ok:
            diff = difference(derived, claim_raw)
            example = counterexample(layer, key, claim)
    seconds = time.perf_counter() - start
    return Verdict(key, derived, claim, proof, diff, example, seconds)


# ---------------------------------------------------------------- concrete counterexamples
def size_grid(layer: Layer) -> list[dict[sp.Symbol, int]]:
    """Concrete sizes, smallest first: n = 1, 2, ...; the other axis 1, 2, ... for each n."""
    batch, *others = layer.axes
    grid = []
    for count in range(1, MAX_BATCH + 1):
        for rest in itertools.product(range(1, MAX_OTHER + 1), repeat=len(others)):
            grid.append({batch: count, **dict(zip(others, rest, strict=True))})
    return grid


def concrete_inputs(layer: Layer, sizes: dict, seed: str) -> dict[sp.Expr, sp.Expr]:
    """Exact small rationals for every float input element, integers for label elements."""
    rng = random.Random(seed)
    values: dict[sp.Expr, sp.Expr] = {}
    arrays = [*layer.inputs.items(), *((k, s) for k, (s, _) in layer.labels.items())]
    if not layer.is_loss:
        arrays.append((str(layer.upstream), layer.output.shape))
    for key, shape in arrays:
        base = sp.IndexedBase(key)
        for at in itertools.product(*(range(sizes[size]) for size in shape)):
            element = base[at] if at else base
            if key in layer.labels:
                values[element] = sp.Integer(rng.randrange(sizes[layer.labels[key][1]]))
            else:
                values[element] = sp.Rational(rng.randint(-9, 9), rng.randint(1, 4))
    return values


def _finite(value: sp.Expr) -> bool:
    return value.is_finite is not False and not value.has(sp.nan, sp.zoo, sp.oo, -sp.oo)


def at_sizes(expr: sp.Expr, layer: Layer, sizes: dict, inputs: dict) -> sp.Expr:
    """An index expression at concrete sizes and inputs: sums written out, exact."""
    concrete = {**sizes, **layer.constant_values}
    out = written_out(expr.xreplace(concrete))
    labels = {k: v for k, v in inputs.items() if str(k.base if k.is_Indexed else k) in layer.labels}
    return out.xreplace(labels).xreplace(inputs)


def differs(truth: sp.Expr, claim: sp.Expr) -> bool:
    """The two exact values differ: their difference, evaluated to 50 digits, is not ~0."""
    gap = sp.N(truth - claim, DIGITS)
    return bool(abs(gap) > ZERO * max(1, abs(sp.N(truth, DIGITS))))


def counterexample(layer: Layer, key: str, claim: sp.Expr) -> Counterexample | None:
    """The smallest sizes where the claim and the exact derivative differ, or None."""
    skipped: list[str] = []
    claim_raw = raw(claim, layer)
    for sizes in size_grid(layer):
        inputs = concrete_inputs(layer, sizes, f"{layer.name}/{sorted(sizes.values())}")
        labels = {k: v for k, v in inputs.items() if _is_label(k, layer)}
        total = None  # written out only where the claim is defined
        for at in itertools.product(*(range(sizes[size]) for size in layer.inputs[key])):
            element = layer.arrays[key][at]
            point = dict(zip(wrt(layer, key).indices, at, strict=True))
            value = at_sizes(claim_raw.xreplace(point), layer, sizes, inputs)
            if not _finite(value):
                skipped.append(", ".join(f"{k}={v}" for k, v in sizes.items()))
                break
            if total is None:
                total = at_sizes(objective(layer), layer, sizes, {}).xreplace(labels)
            truth = exact_derivative(total, element, inputs)
            if differs(truth, value):
                return Counterexample(sizes, element, inputs, truth, value, tuple(skipped))
    return None


def exact_derivative(total: sp.Expr, element: sp.Indexed, inputs: dict) -> sp.Expr:
    """d total / d element at ``inputs``, exactly: every other input takes its value first and
    the element becomes a plain symbol (a much smaller expression to differentiate)."""
    variable = sp.Symbol("variable")
    others = {k: v for k, v in inputs.items() if k != element}
    small = total.xreplace({element: variable}).xreplace(others)
    return sp.diff(small, variable).xreplace({variable: inputs[element]})


def _is_label(element: sp.Expr, layer: Layer) -> bool:
    return isinstance(element, sp.Indexed) and str(element.base) in layer.labels
