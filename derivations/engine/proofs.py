"""Proofs that two index expressions are equal, for a symbolic batch size.

:func:`prove_with_difference` asks ``simplify(derived - claim) == 0`` with every sum treated as an
opaque symbol (after collapsing, both sides are written in the same sums), and then checks the
same difference exactly at a random rational point, a second opinion that does not trust
``simplify``. Wrong variants (biased variance, a missing term, a flipped sign) fail both.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import sympy as sp

from derivations.engine.collapse import pinned
from derivations.language.functions import AxisMax, equal

SEED = 2026  # fixed: the generated files must not change from run to run


class Proof(NamedTuple):
    """Whether ``simplify`` says zero, and whether the exact point check says zero."""

    simplified: bool
    point: bool

    @property
    def ok(self) -> bool:
        """Both checks passed."""
        return self.simplified and self.point


def opaque_sums(expr: sp.Expr) -> sp.Expr:
    """Each distinct ``Sum`` replaced by a symbol named after it (for ``simplify``)."""
    sums = sorted(expr.atoms(sp.Sum), key=sp.default_sort_key)
    return expr.xreplace({total: sp.Symbol(f"S{idx}") for idx, total in enumerate(sums)})


def point_value(expr: sp.Expr, seed: int = SEED) -> sp.Expr:
    """``expr`` evaluated exactly at random rationals: sizes, array elements, sums, deltas,
    and a max and its 0/1 indicator ``x == max`` each as an opaque value (as ``simplify``
    sees them: an identity in any values of them holds at their true ones)."""
    rng = random.Random(seed)
    atoms = sorted(
        expr.atoms(sp.Sum, sp.Indexed, sp.KroneckerDelta, sp.Symbol, AxisMax, equal),
        key=sp.default_sort_key,
    )
    values = {}
    for atom in atoms:
        if isinstance(atom, sp.KroneckerDelta):
            values[atom] = sp.Integer(rng.randint(0, 1))
        elif atom.is_Symbol and atom.is_integer:
            values[atom] = sp.Integer(rng.randint(2, 50))  # n, H, V and free indices
        else:
            values[atom] = sp.Rational(rng.randint(1, 10**6), rng.randint(1, 10**6))
    # sums and deltas first: their insides must not be replaced before they are
    outer = {k: v for k, v in values.items() if not isinstance(k, (sp.Symbol, sp.Indexed))}
    inner = {k: v for k, v in values.items() if k not in outer}
    return expr.xreplace(outer).xreplace(inner)


POINT_DIGITS = 60  # a transcendental point value is evaluated to this many digits
POINT_ZERO = sp.Float("1e-45", POINT_DIGITS)  # and must vanish to this, relative to its terms


def point_is_zero(value: sp.Expr) -> bool:
    """An exact point value is zero: literally (rationals), or, where it holds unevaluated
    transcendentals (``tanh(3/7)``), to 45 digits relative to its largest term at 60 digits,
    far below any coincidence of random rationals."""
    if value == 0:
        return True
    if value.is_Rational or not value.is_number:
        return False  # a non-zero rational is exactly non-zero
    terms = [abs(sp.N(term, POINT_DIGITS)) for term in sp.Add.make_args(sp.expand(value))]
    size = max([sp.Float(1, POINT_DIGITS), *terms])
    return bool(abs(sp.N(value, POINT_DIGITS)) <= POINT_ZERO * size)


def prove_with_difference(derived: sp.Expr, claim: sp.Expr) -> tuple[Proof, sp.Expr]:
    """Prove ``derived == claim`` for symbolic sizes (simplify with sums opaque, then exact
    random-rational points), and return ``derived - claim`` simplified from the same single
    ``simplify`` call: what a refutation prints, at the cost of one simplify, not two.

    Where that fails and the difference holds a delta, the proof is tried once more on the
    difference expanded and :func:`derivations.engine.collapse.pinned` (an index a delta pins read
    at its value beside it, which ``simplify`` does not do): an identity, so its proof proves the
    claim too. Only as a second try, because the pinned form depends on how the products are
    grouped, so it can also hide a zero that the first form shows."""
    difference = derived - claim
    proof, reduced = _proof(difference)
    if not proof.ok and difference.has(sp.KroneckerDelta):
        again, _ = _proof(pinned(sp.expand_mul(difference)))
        if again.ok:
            return again, sp.S.Zero
    return proof, reduced


def _proof(difference: sp.Expr) -> tuple[Proof, sp.Expr]:
    """Both checks of ``difference == 0``, and the difference as ``simplify`` left it."""
    sums = sorted(difference.atoms(sp.Sum), key=sp.default_sort_key)
    back = {sp.Symbol(f"S{idx}"): total for idx, total in enumerate(sums)}
    reduced = sp.simplify(opaque_sums(difference))
    point = all(point_is_zero(point_value(difference, seed)) for seed in (SEED, SEED + 1))
    return Proof(reduced == 0, point), sp.factor_terms(reduced).xreplace(back)
