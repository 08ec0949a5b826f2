"""The derivation pipeline: differentiate, name, collapse, substitute, prove.

For each gradient of a layer: (1) differentiate the objective element-wise with respect to one
element with free indices; (2) give the forward's subexpressions their notebook names; (3)
collapse the sums of Kronecker deltas; (4) apply the proved facts (deviations sum to zero) and
simplify; (5) prove the result equal to the closed form the kernel prints.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import sympy as sp

from derivations.collapse import canonical, collapse
from derivations.proofs import Proof, prove_equal
from derivations.spec import Gradient, Layer, rewrite


class Steps(NamedTuple):
    """One gradient's derivation, step by step, and its proof."""

    gradient: Gradient
    derivative: sp.Expr  # d objective / d wrt, sums and deltas unevaluated
    named: sp.Expr  # the notebook's names substituted
    collapsed: sp.Expr  # delta sums collapsed
    derived: sp.Expr  # the facts applied: the derived closed form
    simplified: sp.Expr  # the same over one common denominator, factored
    proof: Proof  # derived == closed


class Derivation(NamedTuple):
    """A layer's derivation: every gradient's steps, and the seconds it took."""

    layer: Layer
    steps: tuple[Steps, ...]
    seconds: float


def simplified(expr: sp.Expr) -> sp.Expr:
    """``expr`` over a common denominator with common factors pulled out, each sum held as an
    opaque symbol meanwhile (so sympy does not try to evaluate it)."""
    sums = sorted(expr.atoms(sp.Sum), key=sp.default_sort_key)
    opaque = {total: sp.Symbol(f"S{idx}") for idx, total in enumerate(sums)}
    back = {symbol: total for total, symbol in opaque.items()}
    return sp.factor_terms(sp.cancel(sp.expand(expr.xreplace(opaque)))).xreplace(back)


def derive_gradient(layer: Layer, gradient: Gradient) -> Steps:
    """Run the five steps for one gradient of ``layer``."""
    derivative = sp.diff(layer.objective, gradient.wrt)
    named = rewrite(derivative, layer.naming)
    collapsed = canonical(collapse(named))
    derived = rewrite(rewrite(collapsed, layer.naming), layer.facts)
    closed = canonical(collapse(rewrite(gradient.closed, layer.unfold)))
    return Steps(
        gradient,
        derivative,
        named,
        collapsed,
        derived,
        simplified(derived),
        prove_equal(derived, closed),
    )


def derive_layer(layer: Layer) -> Derivation:
    """Derive every gradient of ``layer``."""
    start = time.perf_counter()
    steps = tuple(derive_gradient(layer, gradient) for gradient in layer.gradients)
    return Derivation(layer, steps, time.perf_counter() - start)
