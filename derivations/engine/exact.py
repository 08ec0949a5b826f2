"""Exact values at concrete sizes: sums written out, derivatives at exact rationals, and
values certified to :data:`DIGITS` digits where they are not rational (``tanh(3/7)``).

What the counterexample search and the engine's independent exact check stand on: nothing here
collapses a delta or calls ``simplify``.
"""

from __future__ import annotations

import itertools

import sympy as sp

from derivations.language.functions import AxisMax, MaxOf

DIGITS = 50  # a non-rational value is certified to this many digits


def written_out(expr: sp.Expr) -> sp.Expr:
    """Every sum with concrete bounds written out term by term (a plain loop, no deltas
    collapsed: ``Sum.doit()`` gives the same, slowly)."""

    def write_out(total: sp.Sum) -> sp.Expr:
        terms = [total.function]
        for dummy, low, high in total.limits:
            terms = [
                term.xreplace({dummy: sp.Integer(v)})
                for term in terms
                for v in range(int(low), int(high) + 1)
            ]
        return sp.Add(*terms)

    def write_max(top: AxisMax) -> sp.Expr:
        ranges = [range(int(size)) for _, size in top.pairs]
        return MaxOf(
            *[
                top.body.xreplace(dict(zip(top.indices, map(sp.Integer, at), strict=True)))
                for at in itertools.product(*ranges)
            ]
        )

    def concrete(x) -> bool:
        return isinstance(x, AxisMax) and all(size.is_Integer for _, size in x.pairs)

    expr = expr.replace(concrete, write_max)
    return expr.replace(lambda x: isinstance(x, sp.Sum), write_out)


def certified(value: sp.Expr) -> sp.Float | None:
    """``value`` to :data:`DIGITS` digits, every digit guaranteed by sympy's ``evalf(strict=
    True)`` error tracking; None where it cannot guarantee them."""
    try:
        out = sp.sympify(value).evalf(DIGITS + 5, strict=True)
    except (sp.core.evalf.PrecisionExhausted, TypeError, ValueError):
        return None
    return out if out.is_Number else None


def differs(truth: sp.Expr, claim: sp.Expr) -> bool:
    """The two exact values differ: equal rationals are not; otherwise both are certified to
    50 digits and their intervals value * (1 +- 1e-50) (plus 1e-50) do not overlap. A value
    that cannot be certified never makes a counterexample."""
    if truth.is_Rational and claim.is_Rational:
        return truth != claim
    a, b = certified(truth), certified(claim)
    if a is None or b is None:
        return False
    width = sp.Float(10, DIGITS) ** -DIGITS
    return bool(abs(a - b) > width * (2 + abs(a) + abs(b)))


def exact_derivative(total: sp.Expr, element: sp.Indexed, inputs: dict) -> sp.Expr:
    """d total / d element at ``inputs``, exactly: every other input takes its value first and
    the element becomes a plain symbol (a much smaller expression to differentiate)."""
    variable = sp.Symbol("variable")
    others = {k: v for k, v in inputs.items() if k != element}
    small = total.xreplace({element: variable}).xreplace(others)
    return sp.diff(small, variable).xreplace({variable: inputs[element]})
