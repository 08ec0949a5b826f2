"""The shipped proof table: keyed by each statement's hash, holding every rule the shipped models
use, each PROVED by the derivation engine (re-proved here: slow), and a wrong rule is not."""

from __future__ import annotations

import pytest

from jaxninja.backward import statements as st
from jaxninja.backward import table


def test_keys_are_the_statements_hashes():
    entries = table.load()
    assert entries
    for key, entry in entries.items():
        assert st.key(entry["statement"]) == key


def test_every_shipped_models_rule_is_proved(names_txt):
    """Every rule the lecture and the example models use is PROVED (reduce_max's tie rule
    included), or CHECKED exactly in its range (the neighbour MLP's uncut slice start and its
    concatenation's first part). (The catalogue's other instances may be NOT PROVED: those are
    refused.)"""
    from jaxninja.backward import generate_source
    from jaxninja.backward.collect import lecture, model_files

    entries = table.load()
    verdicts: dict[str, set[str]] = {}
    for model in [lecture(), *model_files()]:
        for use in generate_source(model, lookup=lambda statement: None).uses:
            verdicts.setdefault(entries[use.key]["verdict"], set()).add(use.prim)
    assert set(verdicts) == {"PROVED", "CHECKED"}
    assert verdicts["CHECKED"] == {"slice", "concatenate"}
    assert "reduce_max" in verdicts["PROVED"]


def test_the_shipped_models_use_only_table_rules(names_txt):
    from jaxninja.backward.collect import collect_uses

    keys = set(table.load())
    missing = [(p, s) for p, s in collect_uses() if st.key(s) not in keys]
    assert missing == []


def test_a_wrong_rule_is_not_proved():
    """tanh's gradient with a sign flipped: the engine does not prove it."""
    from jaxninja.backward.prove import prove

    good = st.unary(2, "tanh({x})", "dout * (1 - out) + dout * (1 - out) * out")
    wrong = st.unary(2, "tanh({x})", "dout * (1 + out) + dout * (1 - out) * out")
    assert prove(good)[0] == "PROVED"
    assert prove(wrong)[0] != "PROVED"


@pytest.mark.slow
def test_the_table_reproves():
    """Every entry proved again with the engine now: the same verdicts (about a minute)."""
    from jaxninja.backward.prove import reprove

    assert reprove(table.load()) == []


def test_the_rules_doc_is_the_table():
    from jaxninja.backward import rulesdoc

    assert rulesdoc.DOC.read_text() == rulesdoc.render(table.load())
