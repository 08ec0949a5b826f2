"""Proofs through kinks: a claim written with ``sign``, ``where``, ``clip`` or comparisons against
a derivative full of jax's steps, equal wherever the forward is differentiable.

Every kinked function and step is rewritten with one strict step ``[z > 0]`` (:class:`Pos`),
exactly (at the kinks too): ``sign(z) = [z>0] - [-z>0]``, ``(z >= 0) = 1 - [-z>0]``, ``|z| =
z (1 - 2[-z>0])``, ``maximum(a, b) = b + (a - b)[a-b>0]``, ``where(c, a, b) = c a + (1 - c) b``,
and so on. Then, **away from the kinks** (no step's argument is 0, as PROVED means for a kinked
forward), ``[-z>0] = 1 - [z>0]``, so ``sign(x)`` and jax's ``grad(abs)`` meet. A step whose
argument holds another step (a ``clip`` against a Huber loss's ``abs(r) <= 1``) is split into
its two cases, each case's facts ``z > 0`` / ``z < 0`` deciding the steps they imply (for
arguments affine in one another, with the constants at their stated values; cases the facts
rule out are dropped). In each case the steps left are opaque symbols to ``simplify``: an
identity for any 0/1 values, so for the true ones.

"Away from the kinks" must not hide a size at which a step's argument is 0 for every input
(``x - mean(x)`` over one element): :func:`degenerate` checks each argument at small sizes and
where its coefficients in the sizes vanish; such a claim is left NOT PROVED here.
"""

from __future__ import annotations

import random
import time

import sympy as sp

from derivations.language.functions import (
    AbsStep,
    GeStep,
    ReluStep,
    TieStep,
    absolute,
    clip,
    maximum,
    minimum,
    relu,
    sign,
    where,
)

MAX_CASES = 64  # a proof splits into at most this many cases
SECONDS = 10.0  # and gives up (not proved: NOT PROVED, never PROVED) after this long


class Pos(sp.Function):
    """``[z > 0]``: 1 above 0, 0 at and below; the one step of the canonical form."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_positive:
            return sp.S.One
        if z.is_nonpositive:
            return sp.S.Zero
        return None


def _pos(z: sp.Expr) -> sp.Expr:
    """``[z > 0]`` with z's positive numeric factor dropped (exact: [2z > 0] = [z > 0])."""
    content, primitive = sp.expand(z).as_content_primitive()
    return Pos(primitive if content.is_positive else sp.expand(z))


def exact_form(expr: sp.Expr) -> sp.Expr:
    """Every kinked function and step in terms of :class:`Pos`, equal everywhere."""

    def rule(node):
        args = node.args
        if isinstance(node, ReluStep):
            return _pos(args[0])
        if isinstance(node, GeStep):
            return 1 - _pos(-args[0])
        if isinstance(node, TieStep):
            return (1 + _pos(args[0]) - _pos(-args[0])) / 2
        if isinstance(node, AbsStep):
            return 1 - 2 * _pos(-args[0])
        if isinstance(node, sign):
            return _pos(args[0]) - _pos(-args[0])
        if isinstance(node, relu):
            return args[0] * _pos(args[0])
        if isinstance(node, absolute):
            return args[0] * (1 - 2 * _pos(-args[0]))
        if isinstance(node, maximum):
            return args[1] + (args[0] - args[1]) * _pos(args[0] - args[1])
        if isinstance(node, minimum):
            return args[0] - (args[0] - args[1]) * _pos(args[0] - args[1])
        if isinstance(node, clip):
            x, lo, hi = args
            low = lo + (x - lo) * _pos(x - lo)
            return low - (low - hi) * _pos(low - hi)
        if isinstance(node, where):
            return args[0] * args[1] + (1 - args[0]) * args[2]
        return None

    kinds = (ReluStep, GeStep, TieStep, AbsStep, sign, relu, absolute, maximum, minimum)
    kinds += (clip, where)
    for _ in range(100):  # innermost first: each pass rewrites what has no kink inside
        nodes = [n for n in expr.atoms(*kinds) if not any(a.atoms(*kinds) for a in n.args)]
        if not nodes:
            return expr
        expr = expr.xreplace({n: rule(n) for n in nodes})
    return expr


def away_from_kinks(expr: sp.Expr) -> sp.Expr:
    """``[-z > 0]`` as ``1 - [z > 0]`` (true where z != 0), z's sign chosen canonically; only
    for a z with no step inside (analytic: 0 on a set of no volume, unless 0 for every input,
    which :func:`degenerate` rules out). A z with a step inside can be 0 on a whole region
    (``relu(x)`` for x < 0): it is split into cases first (:func:`zero`)."""
    flips = {}
    for node in expr.atoms(Pos):
        z = node.args[0]
        if z.could_extract_minus_sign() and not z.atoms(Pos):
            flips[node] = 1 - _pos(-z)
    return expr.xreplace(flips)


def _plain_arguments(expr: sp.Expr) -> set[sp.Expr]:
    """The step arguments with no step inside: those :func:`away_from_kinks` relies on."""
    return {node.args[0] for node in expr.atoms(Pos) if not node.args[0].atoms(Pos)}


def _affine(w: sp.Expr, u: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(a, b) with w = a u + b, a and b numbers, or None."""
    labels = {x.base.label for x in u.atoms(sp.Indexed)}
    plain = {x for x in u.free_symbols if not x.is_integer and x not in labels}
    atoms = sorted(u.atoms(sp.Indexed), key=str) + sorted(plain, key=str)
    if not atoms:
        return None
    t = atoms[0]
    du = sp.diff(u, t)
    if du == 0:
        return None
    a = sp.simplify(sp.diff(w, t) / du)
    if not a.is_number or a == 0:
        return None
    b = sp.expand(w - a * u)
    return (a, b) if b.is_number else None


def _interval(facts: list[tuple[sp.Expr, int]]) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """The facts affine in the first one's argument u as an open interval (lo, hi) of u, or
    None when those facts cannot all hold (an empty interval)."""
    base = facts[0][0]
    lo, hi = -sp.oo, sp.oo
    for z, sign_ in facts:
        found = _affine(z, base)
        if found is None:
            continue
        a, b = found  # sign_ * (a u + b) > 0
        bound = -b / a
        if sign_ * a > 0:
            lo = sp.Max(lo, bound)
        else:
            hi = sp.Min(hi, bound)
    if lo >= hi:
        return None
    return base, lo, hi


def _decide(expr: sp.Expr, facts: list[tuple[sp.Expr, int]]) -> sp.Expr | None:
    """Each step the facts decide replaced by its value; None when the facts are contradictory."""
    if not facts:
        return expr
    known = _interval(facts)
    if known is None:
        return None
    base, lo, hi = known
    values = {}
    for node in expr.atoms(Pos):
        found = _affine(node.args[0], base)
        if found is None:
            continue
        a, b = found  # a u + b over u in (lo, hi): its sign where it cannot change
        if a > 0 and lo.is_finite and a * lo + b >= 0:
            values[node] = sp.S.One
        elif a < 0 and hi.is_finite and a * hi + b >= 0:
            values[node] = sp.S.One
        elif a > 0 and hi.is_finite and a * hi + b <= 0:
            values[node] = sp.S.Zero
        elif a < 0 and lo.is_finite and a * lo + b <= 0:
            values[node] = sp.S.Zero
    return expr.xreplace(values)


def _opaque_zero(expr: sp.Expr) -> bool:
    """``simplify`` says 0 with every sum and step an opaque symbol (an identity for any
    values of the steps, so for the true ones)."""
    atoms = sorted(expr.atoms(sp.Sum, Pos), key=sp.default_sort_key)
    symbols = {atom: sp.Symbol(f"K{k}") for k, atom in enumerate(atoms)}
    return sp.simplify(expr.xreplace(symbols)) == 0


def _nested(expr: sp.Expr) -> Pos | None:
    """A step whose argument holds no step, inside another step's argument (to split on)."""
    for node in sorted(expr.atoms(Pos), key=sp.default_sort_key):
        inner = [x for x in node.args[0].atoms(Pos)]
        for candidate in inner:
            if not candidate.args[0].atoms(Pos):
                return candidate
    return None


def _renormal(expr: sp.Expr) -> sp.Expr:
    """Steps' arguments normalised again after a case substituted values into them."""
    for _ in range(20):  # inner steps first: a normalised inner step can change an outer one
        new = expr.xreplace({node: _pos(node.args[0]) for node in expr.atoms(Pos)})
        if new == expr:
            break
        expr = new
    return away_from_kinks(expr)


def zero(difference: sp.Expr, constants: dict) -> tuple[bool, set[sp.Expr]]:
    """Whether ``difference`` (a derivative minus a claim, kinked) is 0 away from its kinks,
    at the stated constants: exactly, case by case (see the module docstring); and every step
    argument the proof took to be non-zero (for :func:`degenerate` to check)."""
    expr = exact_form(difference.xreplace(constants))
    relied = _plain_arguments(expr)
    cases = [(away_from_kinks(expr), [])]
    count, start = 0, time.perf_counter()
    while cases:
        expr, facts = cases.pop()
        count += 1
        if count > MAX_CASES or time.perf_counter() - start > SECONDS:
            return False, relied
        decided = expr
        while True:  # a decided step can make another decidable
            again = _decide(_renormal(decided), facts)
            if again is None or again == decided:
                break
            decided = again
        if again is None:
            continue  # no point satisfies these facts
        decided = _renormal(decided)
        relied |= _plain_arguments(decided)
        step = _nested(decided)
        if step is None:
            if not _opaque_zero(decided):
                return False, relied
            continue
        z = step.args[0]
        for value, sign_ in ((sp.S.One, 1), (sp.S.Zero, -1)):
            cases.append((_renormal(decided.xreplace({step: value})), [*facts, (z, sign_)]))
    return True, relied


def degenerate(args: list[sp.Expr], value_at, grid: list[dict], seed: str) -> bool:
    """Whether some kink argument is 0 for every input at some size (there, "away from the
    kinks" is nowhere): at one of ``grid``'s sizes two random draws both give 0
    (``value_at(z, sizes, rng)``); or, with the inputs and sums at random values, what is left
    is a function of the sizes that may vanish at a positive integer (one size: its integer
    roots; several: assumed so)."""
    rng = random.Random(seed)
    for z in args:
        for sizes in grid:
            if all(value_at(z, sizes, rng) == 0 for _ in range(2)):
                return True
        rest = z.xreplace({a: _draw(rng) for a in z.atoms(sp.Sum)})
        rest = sp.together(rest.xreplace({a: _draw(rng) for a in rest.atoms(sp.Indexed)}))
        sizes = sorted(x for x in rest.free_symbols if x.is_integer and x.is_positive)
        if not sizes or not rest.free_symbols <= set(sizes):
            continue
        if len(sizes) > 1:
            return True
        numerator = sp.numer(rest)
        if not numerator.is_polynomial(sizes[0]):
            return True
        roots = sp.Poly(numerator, sizes[0]).real_roots()
        if any(r.is_integer and r >= 1 for r in roots):
            return True
    return False


def _draw(rng: random.Random) -> sp.Rational:
    return sp.Rational(rng.choice([-1, 1]) * rng.randint(1, 997), rng.randint(1, 97))
