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


def pinned(expr: sp.Expr) -> sp.Expr:
    """Every product that holds ``KroneckerDelta(i, e)`` (``i`` an index, ``e`` free of it) with
    ``i`` replaced by ``e`` in its other factors: ``δ(i, e)·F(i) = δ(i, e)·F(e)`` for integer
    indices, as where the delta is 0 both sides are and where it is 1, ``i = e``.

    Why: after collapsing, a derivative can hold ``δ(q, y[p])·exp(logits[p, q])`` where a claim
    holds ``δ(q, y[p])·exp(logits[p, y[p]])``; ``simplify`` treats the two elements as unrelated
    and cannot reach zero. The rewrite is an identity, so a proof of the rewritten difference is
    a proof of the original. A factor in which ``i`` is bound (a sum over ``i`` inside it, which
    is another ``i``) leaves that delta alone."""
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    expr = expr.func(*[pinned(arg) for arg in expr.args])
    if not isinstance(expr, sp.Mul):
        return expr
    done: set[sp.Expr] = set()
    while True:
        pin = _next_pin(expr, done)
        if pin is None:
            return expr
        delta, var, value = pin
        done.add(delta)
        others = [f for f in expr.args if f is not delta and f != delta]
        expr = delta * sp.Mul(*[f.xreplace({var: value}) for f in others])
        if not isinstance(expr, sp.Mul):
            return expr


def _next_pin(product: sp.Mul, done: set[sp.Expr]) -> tuple[sp.Expr, sp.Symbol, sp.Expr] | None:
    """A delta factor of ``product`` not yet used that pins an index the other factors hold
    free: (the delta, the index, its value); None when there is none."""
    for delta in sorted(product.args, key=sp.default_sort_key):
        if not isinstance(delta, sp.KroneckerDelta) or delta in done:
            continue
        others = sp.Mul(*[f for f in product.args if f != delta])
        for var, value in _pins(delta):
            bound = any(var in s.variables for s in others.atoms(sp.Sum, sp.Product))
            if others.has(var) and not bound:
                return delta, var, value
    return None


def _pins(delta: sp.KroneckerDelta) -> list[tuple[sp.Symbol, sp.Expr]]:
    """The (index, value) readings of ``delta``: a side that is a symbol, the other side free of
    it; of two symbols, the later one (in sympy's order) is replaced by the earlier one."""
    left, right = sorted(delta.args, key=sp.default_sort_key)
    readings = [(right, left), (left, right)]
    return [(v, e) for v, e in readings if isinstance(v, sp.Symbol) and not e.has(v)]
