"""Check the identities a derivation substitutes, so that no step is taken on trust.

Every naming identity, fact and kernel definition is instantiated at free indices, written in
the layer's raw inputs (each named intermediate replaced by its definition), collapsed and
simplified: it must come out exactly zero.
"""

from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from derivations.collapse import canonical, collapse
from derivations.indices import a, b, p, q
from derivations.proofs import opaque_sums
from derivations.spec import AxisMax, Identity, Layer, to_raw


class Checked(NamedTuple):
    """An identity, instantiated at free indices, and whether it holds."""

    lhs: sp.Expr
    rhs: sp.Expr
    why: str
    holds: bool


def _holds(lhs: sp.Expr, rhs: sp.Expr, layer: Layer) -> bool:
    difference = canonical(collapse(to_raw(lhs, layer) - to_raw(rhs, layer)))
    return sp.simplify(opaque_sums(difference)) == 0


def check_identity(identity: Identity, layer: Layer) -> Checked:
    """``identity`` at the free indices p, q, checked in the layer's raw inputs."""
    lhs, rhs = (side.xreplace({a: p, b: q}) for side in (identity.lhs, identity.rhs))
    return Checked(lhs, rhs, identity.why, _holds(lhs, rhs, layer))


def check_kernel_def(target: sp.Indexed, value: sp.Expr, layer: Layer) -> Checked:
    """A name the kernel computes first; the max shift is a choice, proved harmless by
    d loss / d logit_maxes = 0, and new names (dlnraw) hold by definition."""
    if value.has(AxisMax):
        return Checked(target, value, "any shift: d loss / d logit_maxes = 0 (proved)", True)
    return Checked(target, value, "definition", _holds(target, value, layer))


def check_layer(layer: Layer) -> tuple[Checked, ...]:
    """Every identity ``layer`` uses, checked."""
    used = (*layer.naming, *layer.facts, *layer.unfold)
    return (
        *(check_identity(identity, layer) for identity in used),
        *(check_kernel_def(target, value, layer) for target, value in layer.kernel_defs),
    )
