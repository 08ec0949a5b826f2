"""Collapse sums of Kronecker deltas: the step ``Sum.doit()`` cannot do here.

After differentiating element-wise, every sum carries deltas like ``KroneckerDelta(i, p)``.
``Sum.doit()`` crashes on the BatchNorm expression in sympy 1.14, so :func:`collapse` walks the
expression bottom-up and, for each sum, uses linearity (sum of terms, constants pulled out) and
``sympy.concrete.delta.deltasummation`` for the terms that hold a solvable delta.
"""

from __future__ import annotations

import sympy as sp
from sympy.concrete.delta import deltasummation


def _solvable(term: sp.Expr, dummy: sp.Symbol) -> bool:
    """True when ``term`` has a delta that pins ``dummy`` (one side is ``dummy``, the other
    side free of it); ``KroneckerDelta(r, xb[i, t])`` does not pin ``i``."""
    for delta in term.atoms(sp.KroneckerDelta):
        left, right = delta.args
        if (left == dummy and not right.has(dummy)) or (right == dummy and not left.has(dummy)):
            return True
    return False


def _sum_term(term: sp.Expr, limit: tuple) -> sp.Expr:
    """Sum one product term over one limit."""
    dummy, low, high = limit
    if not term.has(dummy):
        return term * (high - low + 1)
    if _solvable(term, dummy):
        return deltasummation(term, limit, no_piecewise=True)  # indices are in range
    outside, inside = term.as_independent(dummy, as_Add=False)
    if isinstance(inside, sp.Sum):  # an uncollapsible sum: merge the limits
        return outside * sp.Sum(inside.function, *inside.limits, limit)
    return outside * sp.Sum(inside, limit)


def _sum(body: sp.Expr, limit: tuple) -> sp.Expr:
    """Sum ``body`` over ``limit`` term by term (products expanded, powers left alone)."""
    body = sp.expand(body, power_base=False, power_exp=False, log=False, multinomial=False)
    return sp.Add(*[_sum_term(term, limit) for term in sp.Add.make_args(body)])


def collapse(expr: sp.Expr) -> sp.Expr:
    """Every ``Sum`` in ``expr`` collapsed: deltas summed out, constants pulled out."""
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        body = collapse(expr.function)
        # the solvable limits first: summing them out can only simplify the rest
        limits = sorted(expr.limits, key=lambda limit: not _solvable(body, limit[0]))
        for limit in limits:
            body = _sum(body, limit)
        return body
    return expr.func(*[collapse(arg) for arg in expr.args])
