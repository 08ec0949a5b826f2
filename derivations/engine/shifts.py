"""Shifted and strided reads, ``x[b, t + k]``, ``x[b, 2*t + k - P]``, ``x[b, 2*t + c // C, c % C]``,
and the exact check that decides a claim about them at every size up to a stated bound.

A read at a position that is an expression (not a bare index name) is **zero outside the
array**: ``x[b, t + k - P]`` is 0 where ``t + k - P < 0`` or ``>= L``, and also where the position
is not an integer (``dout[b, (s - k) / 2]`` is 0 at odd ``s - k``: the zeros a strided
convolution's transpose inserts). The element is held as ``x[b, e] * InRange(e, L)``
(:mod:`derivations.language.positions`, where the statement language reads positions).

A claim about such reads is first decided at concrete sizes (:func:`check_exactly`): at every
size combination up to the stated bounds (smallest first), the forward is written out with its
inputs as *symbols*, each gradient element is differentiated exactly and compared with the claim
written out the same way: ``expand`` (then ``simplify``) of the difference must be 0, an
identity in every input value. A difference that is not 0 is refuted with exact rational inputs
at those sizes; one that neither vanishes nor shows at a point off the kinks is NOT PROVED. A
claim that holds at every size checked is ``CHECKED exactly for L <= 6, K <= 3``; it is PROVED
only if a symbolic proof also succeeds (:func:`prove_shifted`: each delta of an affine position
summed out exactly, :func:`collapse_shifts`), and only when every size is at least 1 for every
axis >= 1 (:func:`sizes_at_least_one`).
"""

from __future__ import annotations

import itertools
import math
import time
from typing import NamedTuple

import sympy as sp

from derivations.engine.exact import differs, written_out
from derivations.language.functions import KINKS
from derivations.language.names import LayerError
from derivations.language.positions import InRange

MAX_CHECK = 4  # each axis is checked up to this size unless Layer(check_sizes=...) says otherwise
CHECK_SECONDS = 60.0  # the exact check's budget; past it the claim is NOT PROVED, never CHECKED
MAX_COMBINATIONS = 5000  # and a grid of more size combinations than this
MAX_TERMS = 200_000  # a forward or claim written out at one size beyond this many terms: stop
PROOF_SECONDS = 20.0  # the symbolic proof's budget, after the exact check passed
MAX_ORDERS = 24  # orders of pinning a derivation's dummies tried by the symbolic proof
DRAWS = 5  # exact rational points drawn (off every kink) to show a difference that is not 0


# ---------------------------------------------------------------- the exact check
class Checked(NamedTuple):
    """What :func:`check_exactly` found for one claim."""

    bounds: str  # "L <= 6, K <= 3": every size combination up to these was checked
    complete: bool  # every combination checked, each difference exactly 0
    counterexample: object | None  # derive.Counterexample at the smallest failing sizes
    searched: str  # what was covered, in words (when not complete)


def bounds(layer) -> dict[sp.Symbol, int]:
    """Each axis's largest checked size: ``Layer(check_sizes=...)`` or :data:`MAX_CHECK`."""
    return {axis: layer.check_sizes.get(str(axis), MAX_CHECK) for axis in layer.axes}


def bounds_text(layer) -> str:
    return ", ".join(f"{axis} <= {top}" for axis, top in bounds(layer).items())


def grid(layer) -> list[dict[sp.Symbol, int]]:
    """Every size combination up to the bounds where every declared size (``T = 2*T2``,
    ``L - K + 1``) is at least 1; the smallest sum first, then the first axis smallest. More
    than :data:`MAX_COMBINATIONS` is a one-line error (name smaller ``check_sizes``)."""
    tops = bounds(layer)
    count = math.prod(tops.values())
    if count > MAX_COMBINATIONS:
        raise LayerError(
            f"layer {layer.name}: the exact check would try {count} size combinations "
            f"({bounds_text(layer)}), more than {MAX_COMBINATIONS}: give smaller check_sizes"
        )
    out = []
    for values in itertools.product(*(range(1, top + 1) for top in tops.values())):
        sizes = dict(zip(tops, values, strict=True))
        if all(sp.sympify(size).xreplace(sizes) >= 1 for size in layer.all_sizes):
            out.append(sizes)
    return sorted(out, key=lambda s: (sum(s.values()), tuple(s.values())))


def _elements(layer, key: str, sizes: dict) -> list[sp.Expr]:
    shape = layer.shape_of(key)
    base = sp.IndexedBase(key)
    concrete = [int(sp.sympify(size).xreplace(sizes)) for size in shape]
    return [base[at] if at else base for at in itertools.product(*map(range, concrete))]


def terms(expr: sp.Expr, cap: int = MAX_TERMS) -> int:
    """How many terms ``expr`` has once its (concrete) sums are written out, counted from the
    sums' ranges without writing anything (no more than ``cap`` + 1): what bounds the time and
    memory of the exact check before it starts."""
    if isinstance(expr, sp.Sum):
        count = 1
        for _, low, high in expr.limits:
            count *= max(int(high - low + 1), 0) if (high - low).is_Number else cap + 1
        return min(count * terms(expr.function, cap), cap + 1)
    if not expr.args or isinstance(expr, sp.Indexed):
        return 1
    return min(sum(terms(arg, cap) for arg in expr.args), cap + 1)


def _zero(difference: sp.Expr) -> bool:
    """``difference`` is 0 for every value of its symbols: ``expand``, then ``simplify``."""
    if difference == 0:
        return True
    reduced = sp.expand(difference)
    if reduced == 0:
        return True
    return sp.simplify(reduced) == 0


def check_exactly(layer, key: str, claim_raw: sp.Expr) -> Checked:
    """The claim (in the raw inputs, at the free indices) against the exact derivative of the
    written-out forward, at every size of :func:`grid`, within :data:`CHECK_SECONDS`."""
    from derivations.engine.derive import (
        Counterexample,
        _on_a_kink,
        concrete_inputs,
        objective,
        wrt,
    )

    start = time.perf_counter()
    total_expr = objective(layer)
    free = wrt(layer, key).indices
    every = grid(layer)
    text = bounds_text(layer)
    if not every:
        return Checked(text, False, None, f"no sizes with {text} make every declared size >= 1")
    for done, sizes in enumerate(every):
        if time.perf_counter() - start > CHECK_SECONDS:
            searched = f"{done} of {len(every)} size combinations ({text}; time budget)"
            return Checked(text, False, None, searched)
        concrete = {**sizes, **layer.constant_values}
        at_sizes = total_expr.xreplace(concrete)
        if terms(at_sizes, MAX_TERMS) > MAX_TERMS:
            where = ", ".join(f"{k}={v}" for k, v in sizes.items())
            searched = (
                f"{done} of {len(every)} size combinations ({text}): at {where} the forward "
                f"written out passes {MAX_TERMS} terms (give smaller check_sizes)"
            )
            return Checked(text, False, None, searched)
        total = written_out(at_sizes)
        open_elements = []
        for element in _elements(layer, key, sizes):
            if time.perf_counter() - start > CHECK_SECONDS:
                searched = f"{done} of {len(every)} size combinations ({text}; time budget)"
                return Checked(text, False, None, searched)
            at = dict(zip(free, element.indices, strict=True)) if free else {}
            claim_at = claim_raw.xreplace(at).xreplace(concrete)
            if terms(claim_at, MAX_TERMS) > MAX_TERMS:
                searched = f"the claim written out at {sizes} passes {MAX_TERMS} terms"
                return Checked(text, False, None, searched)
            claim = written_out(claim_at)
            truth = sp.diff(total, element)
            if not _zero(truth - claim):
                open_elements.append((element, truth, claim))
        if not open_elements:
            continue
        kinked = bool(total.atoms(*KINKS))
        for draw in range(DRAWS):
            inputs = concrete_inputs(layer, sizes, f"{layer.name}/shifts/{sizes}/{draw}")
            if kinked and _on_a_kink(total, inputs):
                continue  # the forward has no derivative there: no counterexample either
            for element, truth, claim in open_elements:
                a, b = truth.xreplace(inputs), claim.xreplace(inputs)
                if differs(a, b):
                    example = Counterexample(sizes, element, inputs, a, b, ())
                    return Checked(text, False, example, "")
        where = ", ".join(f"{k}={v}" for k, v in sizes.items())
        searched = f"at {where} the difference is not 0, yet no exact point shows it"
        return Checked(text, False, None, searched)
    return Checked(text, True, None, "")


# ---------------------------------------------------------------- symbolic proofs, where reachable
def sizes_at_least_one(layer) -> bool:
    """Every size is at least 1 whenever every axis is: each a polynomial in the axes with
    no negative coefficient on a monomial of positive degree and at least 1 at all axes 1
    (``2*T2``, ``T + K - 1``; not ``T - K + 1``). Only then may a symbolic proof, whose sums
    over ``0..n-1`` are empty exactly when n = 0 (sympy's sum over ``0..-2`` is not empty),
    speak of every size."""
    for size in layer.all_sizes:
        poly = sp.Poly(sp.expand(size), *layer.axes)
        ones = poly.eval(dict.fromkeys(layer.axes, 1)) if layer.axes else poly.as_expr()
        negative = any(c < 0 for m, c in poly.terms() if sum(m) > 0)
        if negative or ones < 1:
            return False
    return True


def _linear_in(expr: sp.Expr, dummy: sp.Symbol) -> tuple[sp.Expr, sp.Expr] | None:
    """(c, e) with ``expr == c*dummy + e``, c a non-zero integer and e free of ``dummy``."""
    expr = sp.expand(expr)
    c = expr.coeff(dummy)
    rest = sp.expand(expr - c * dummy)
    if c.is_Integer and c != 0 and not rest.has(dummy):
        return c, rest
    return None


def _pin(term: sp.Expr, dummy: sp.Symbol):
    """A delta factor of ``term`` that pins ``dummy`` (``δ(a, c*dummy + e)``, c a non-zero
    integer), and the value it pins it to, ``(a - e) / c``; None when there is none."""
    for delta in sorted(sp.Mul.make_args(term), key=sp.default_sort_key):
        if not isinstance(delta, sp.KroneckerDelta):
            continue
        left, right = delta.args
        found = _linear_in(left - right, dummy)
        if found is not None:
            c, rest = found
            return delta, -rest / c
    return None


def _sum_term(term: sp.Expr, limits: list, order: tuple) -> sp.Expr:
    """One product summed over ``limits``: each limit a delta pins, in the priority
    ``order`` (dummy names), summed out exactly, ``sum_{d=0}^{n-1} δ(a, c*d + e) F(d) =
    InRange((a - e)/c, n) F((a - e)/c)`` (d must be an integer in 0..n-1, which InRange
    says); the rest kept as a sum."""
    rank = {name: k for k, name in enumerate(order)}
    limits = sorted(limits, key=lambda x: rank.get(str(x[0]), len(rank)))
    progress = True
    while progress:
        progress = False
        for limit in limits:
            dummy, low, high = limit
            if low != 0 or not term.has(dummy) or _binds(term, dummy):
                continue
            found = _pin(term, dummy)
            if found is None:
                continue
            delta, value = found
            rest = sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not delta])
            term = InRange(value, high + 1) * rest.xreplace({dummy: value})
            limits.remove(limit)
            progress = True
            break
    return sp.Sum(term, *limits) if limits else term


def _binds(expr: sp.Expr, dummy: sp.Symbol) -> bool:
    return any(dummy in s.variables for s in expr.atoms(sp.Sum))


def collapse_shifts(expr: sp.Expr, order: tuple = ()) -> sp.Expr:
    """Every sum whose dummies a delta of an affine position pins, summed out exactly (see
    :func:`_sum_term`): the step the general delta collapse does not take for ``δ(q, i0 +
    2*i1 - P)``. Sums whose limits depend on other dummies are left alone."""
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[collapse_shifts(arg, order) for arg in expr.args])
    body = collapse_shifts(expr.function, order)
    dummies = {d for d, _, _ in expr.limits}
    if any((low.free_symbols | high.free_symbols) & dummies for _, low, high in expr.limits):
        return sp.Sum(body, *expr.limits)
    body = sp.expand(body, power_base=False, power_exp=False, log=False, multinomial=False)
    terms = sp.Add.make_args(body)
    return sp.Add(*[_sum_term(term, expr.limits, order) for term in terms])


def in_range_known(expr: sp.Expr, ranges: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    """``InRange(i, n)`` replaced by 1 where ``i`` is known to run over ``0..n-1``: a free
    index of the gradient over its axis (``ranges``), or a sum's dummy inside its sum."""
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, InRange):
        index, size = expr.args
        return sp.S.One if index in ranges and ranges[index] == size else expr
    if isinstance(expr, sp.Sum):
        inner = dict(ranges)
        for dummy, low, high in expr.limits:
            if low == 0:
                inner[dummy] = high + 1
            else:
                inner.pop(dummy, None)
        return sp.Sum(in_range_known(expr.function, inner), *expr.limits)
    return expr.func(*[in_range_known(arg, ranges) for arg in expr.args])


def readable(layer, key: str, derived: sp.Expr) -> sp.Expr:
    """The derivation with its affine deltas summed out and the ranges true by construction
    dropped (the identities :func:`prove_shifted` uses): the form a claim can copy, e.g.
    ``Sum(in_range((q + P - i0)/2, T)*dout[p, (q + P - i0)/2, i1]*w[i0, r, i1], ...)``."""
    from derivations.engine.derive import merged_sums, normal_dummies

    ranges = layer.free_sizes(layer.inputs[key])
    return normal_dummies(merged_sums(in_range_known(collapse_shifts(derived), ranges)))


def prove_shifted(layer, key: str, derived: sp.Expr, claim_raw: sp.Expr) -> bool:
    """A symbolic proof of a claim about shifted reads, where the engine reaches one: the
    derivation's affine deltas summed out (both ways of choosing which dummy a delta pins),
    ranges that hold by construction dropped, then ``simplify`` with sums opaque and exact
    points (:func:`derivations.engine.proofs.prove_with_difference`). Each step is an identity for
    integer indices, so a proof of any candidate is a proof of the claim; only for sizes
    that are each at least 1 (:func:`sizes_at_least_one`)."""
    from derivations.engine.derive import merged_sums, normal_dummies
    from derivations.engine.proofs import prove_with_difference

    if not sizes_at_least_one(layer):
        return False
    ranges = layer.free_sizes(layer.inputs[key])

    def tidy(expr: sp.Expr) -> sp.Expr:
        return normal_dummies(merged_sums(in_range_known(expr, ranges)))

    claim = tidy(collapse_shifts(claim_raw))
    names = sorted({str(d) for total in derived.atoms(sp.Sum) for d in total.variables})
    candidates = []  # each a form of the derivation: one per order of pinning its dummies
    for order in itertools.islice(itertools.permutations(names), MAX_ORDERS):
        candidate = tidy(collapse_shifts(derived, order))
        if candidate not in candidates:
            candidates.append(candidate)
    start = time.perf_counter()
    for candidate in candidates:
        if time.perf_counter() - start > PROOF_SECONDS:
            return False  # past the budget: CHECKED stays the verdict, never a guess
        proof, _ = prove_with_difference(candidate, claim)
        if proof.ok:
            return True
    return False
