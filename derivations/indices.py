"""The symbols every derivation shares: symbolic sizes, index letters, and epsilon.

Sizes are symbolic (``n`` the batch, ``V`` the vocabulary, ``H`` the hidden width), so every
result holds for any batch size. Free indices (``p``, ``q``, ...) are kept distinct from the
summation dummies (``i``, ``j``, ``k``, ``l``): differentiating with respect to ``x[i]`` when
``i`` is also a summation dummy gives a wrong answer in sympy.
"""

from __future__ import annotations

import sympy as sp

n, V, H, T, E = sp.symbols("n V H T E", integer=True, positive=True)
"""Batch size, vocabulary (classes), hidden width, context length, embedding width."""

i, j, k, l, t, e = sp.symbols("i j k l t e", integer=True, nonnegative=True)
"""Summation dummies."""

p, q, r, s = sp.symbols("p q r s", integer=True, nonnegative=True)
"""Free indices of a gradient: d/d x[p, q]."""

a, b = sp.Wild("a"), sp.Wild("b")
"""Pattern variables: an identity written with ``a``, ``b`` rewrites every index."""

eps = sp.Symbol("epsilon", positive=True)
"""BatchNorm's and LayerNorm's epsilon, inside the square root."""


def array(name: str, positive: bool = False) -> sp.IndexedBase:
    """An array in index notation (``positive`` for the inverse standard deviations)."""
    return sp.IndexedBase(name, positive=True) if positive else sp.IndexedBase(name)


def batch_sum(body: sp.Expr, dummy: sp.Symbol = i) -> sp.Sum:
    """Sum over the batch axis: ``dummy`` from 0 to n - 1."""
    return sp.Sum(body, (dummy, 0, n - 1))


def class_sum(body: sp.Expr, dummy: sp.Symbol = j, size: sp.Symbol = V) -> sp.Sum:
    """Sum over the class / feature axis: ``dummy`` from 0 to ``size`` - 1."""
    return sp.Sum(body, (dummy, 0, size - 1))
