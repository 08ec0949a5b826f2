"""Collapse sums of Kronecker deltas: the step ``Sum.doit()`` cannot do here.

After differentiating element-wise, every sum carries deltas like ``KroneckerDelta(i, p)``.
``Sum.doit()`` crashes on the BatchNorm expression in sympy 1.14, so :func:`collapse` walks the
expression bottom-up and, for each sum, uses linearity (sum of terms, constants pulled out) and
``sympy.concrete.delta.deltasummation`` for the terms that hold a solvable delta.
"""

from __future__ import annotations

import sympy as sp
from sympy.concrete.delta import deltasummation

from derivations.language.functions import AxisMax


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
    a proof of the original. A factor that binds a symbol of the pair (a sum over ``i``, which
    is another ``i``, or over an index of ``e``) leaves that delta alone."""
    return _rewritten(expr, _to_value)


def unpinned(expr: sp.Expr) -> sp.Expr:
    """The other way round: in every product that holds ``KroneckerDelta(i, e)``, ``e`` (an
    index array's element, ``y[p]``) replaced by the index ``i`` in the other factors, so that
    ``exp(-logits[p, y[p]])·δ(q, y[p])`` becomes ``exp(-logits[p, q])·δ(q, y[p])``: an array
    expression the kernel printer can write (``logits[p, y[p]]`` has no array form). The same
    identity as :func:`pinned`, under the same guard."""
    return _rewritten(expr, _to_index)


Reading = tuple[sp.Expr, sp.Expr]  # (what a delta lets be replaced, by what)
MAX_READINGS = 64  # deltas applied in one product at most (a bound on time, never on soundness)


def _rewritten(expr: sp.Expr, readings) -> sp.Expr:
    """``expr`` with each product's deltas applied to its other factors, bottom-up."""
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    expr = expr.func(*[_rewritten(arg, readings) for arg in expr.args])
    used: set[sp.Expr] = set()
    for _ in range(MAX_READINGS):  # each step is an identity: stopping early is still exact
        if not isinstance(expr, sp.Mul):
            return expr
        found = _next_reading(expr, used, readings)
        if found is None:
            return expr
        delta, (old, new) = found
        used.add(delta)
        others = [f for f in expr.args if f != delta]
        expr = delta * sp.Mul(*[f.xreplace({old: new}) for f in others])
    return expr


def _next_reading(product: sp.Mul, used: set[sp.Expr], readings):
    """A delta factor of ``product`` not yet used and one of its ``readings`` that the other
    factors hold, with no symbol of the pair bound inside them: (the delta, the reading)."""
    for delta in sorted(product.args, key=sp.default_sort_key):
        if not isinstance(delta, sp.KroneckerDelta) or delta in used:
            continue
        others = sp.Mul(*[f for f in product.args if f != delta])
        bound = _bound(others)
        for old, new in readings(delta):
            if others.has(old) and not bound & (old.free_symbols | new.free_symbols):
                return delta, (old, new)
    return None


def _bound(expr: sp.Expr) -> set[sp.Symbol]:
    """The indices something inside ``expr`` binds: a sum's or product's, a max's (the shift)."""
    bound = {v for s in expr.atoms(sp.Sum, sp.Product) for v in s.variables}
    return bound | {x for m in expr.atoms(AxisMax) for x in m.indices}


def _to_value(delta: sp.KroneckerDelta) -> list[Reading]:
    """An index side replaced by the other side (free of it); of two indices, the later one
    in sympy's order by the earlier one."""
    left, right = sorted(delta.args, key=sp.default_sort_key)
    return [(i, e) for i, e in ((right, left), (left, right)) if i.is_Symbol and not e.has(i)]


def _to_index(delta: sp.KroneckerDelta) -> list[Reading]:
    """A side that is not an index (free of the index on the other side) replaced by it."""
    left, right = delta.args
    pairs = ((right, left), (left, right))
    return [(e, i) for e, i in pairs if i.is_Symbol and not e.is_Symbol and not e.has(i)]
