"""What a derivation is made of: a layer's forward, its identities, and its gradients.

A layer's backward is the gradient of ``objective = sum(upstream * output)``: differentiating
that scalar with the upstream gradient held constant gives exactly the vector-Jacobian product
the backward pass computes (``dhprebn`` from ``dhpreact``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import sympy as sp


class Identity(NamedTuple):
    """``lhs = rhs``, used as the rewrite ``lhs -> rhs``; the wilds ``a``, ``b`` in ``lhs``
    match any index. ``why`` says in a few words why it holds."""

    lhs: sp.Expr
    rhs: sp.Expr
    why: str


class AxisMax(sp.Function):
    """``AxisMax(logits[p, j], j)``: the maximum over one index, the max trick's shift. Not an
    identity: any shift is exact (the derivation proves d loss / d logit_maxes = 0)."""

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        body, index = self.args
        return rf"\max_{{{printer._print(index)}}} {printer._print(body)}"


class Gradient(NamedTuple):
    """One gradient of a layer: ``name`` = d objective / d ``wrt``, expected ``closed``."""

    name: str  # the notebook's name, e.g. "dhprebn"
    wrt: sp.Indexed  # the element differentiated, with free indices: hprebn[p, q]
    closed: sp.Expr  # the closed form the kernel prints (the lecture's, where there is one)


class Layer(NamedTuple):
    """A layer in index notation, with everything its derivation needs."""

    name: str  # "batchnorm"
    title: str  # a heading for people
    forward: tuple[tuple[sp.Expr, sp.Expr], ...]  # (output[i, j], its definition) for display
    objective: sp.Expr  # sum(upstream * output) with every intermediate written out
    naming: tuple[Identity, ...]  # name the intermediates, applied before collapsing
    facts: tuple[Identity, ...]  # identities applied after collapsing (each one is proved)
    unfold: tuple[Identity, ...]  # kernel-only names in ``closed`` -> what they stand for
    kernel_defs: tuple[tuple[sp.Indexed, sp.Expr], ...]  # computed first: probs[p, q] = ...
    gradients: tuple[Gradient, ...]
    definitions: dict[sp.IndexedBase, Callable[..., sp.Expr]]  # named array -> raw expression
    sizes: dict[sp.Symbol, int]  # concrete sizes for the brute-force check (besides n)


def rewrite(expr: sp.Expr, identities: tuple[Identity, ...]) -> sp.Expr:
    """Apply each identity ``lhs -> rhs`` in turn, everywhere it matches."""
    for identity in identities:
        expr = expr.replace(identity.lhs, identity.rhs)
    return expr


def to_raw(expr: sp.Expr, layer: Layer) -> sp.Expr:
    """Replace every named intermediate by its definition in the layer's raw inputs."""
    for _ in range(len(layer.definitions) + 1):  # definitions may refer to one another
        new = expr.replace(
            lambda x: isinstance(x, sp.Indexed) and x.base in layer.definitions,
            lambda x: layer.definitions[x.base](*x.indices),
        )
        if new == expr:
            return new
        expr = new
    return expr
