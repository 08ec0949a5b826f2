"""The identity corpus (``tests/derivations/corpus.py``): every right claim PROVED for every
size, every wrong twin REFUTED (by a counterexample, or by its shape as numpy reads it), none
NOT PROVED. Symbolic only (no kernel, no jax): each identity is a derivation and a proof."""

from __future__ import annotations

import pytest

from derivations.engine.derive import check
from derivations.language.layer import Layer
from derivations.outputs.layer_report import fate
from tests.derivations.corpus import IDENTITIES


def _layer(identity, claim: str) -> Layer:
    return Layer(identity.name, claims={identity.key: claim}, **identity.statement)


@pytest.mark.parametrize("identity", IDENTITIES, ids=lambda x: x.name)
def test_the_right_claim_is_proved_and_its_twin_refuted(identity):
    right = check(_layer(identity, identity.right), identity.key)
    assert fate(right) == "PROVED", (identity.name, right.difference)
    assert not right.kinked
    wrong = check(_layer(identity, identity.wrong), identity.key)
    assert fate(wrong) == "REFUTED", (identity.name, wrong.difference)


def test_the_corpus_covers_both_kinds_of_refutation():
    """Twins refuted by value (a counterexample) and by shape (numpy's reading) both occur,
    so the test above exercises both routes."""
    shapes = [_layer(x, x.wrong).mismatches.get(x.key) is not None for x in IDENTITIES]
    assert any(shapes) and not all(shapes)
