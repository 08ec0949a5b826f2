"""The rule table's hash of what its verdicts depend on (``python -m derivations --check``):
equal, the verdicts stand without sympy; changed (engine source, a rule, a verdict), the table
is re-proved, and a verdict that no longer holds fails the check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jaxninja.backward import stamp, table
from jaxninja.backward import statements as st

TANH = st.unary(1, "tanh({x})", "dout * (1 - out) + dout * (1 - out) * out")
WRONG = st.unary(1, "tanh({x})", "dout * (1 + out) + dout * (1 - out) * out")  # a sign flipped


def _table(tmp_path: Path, rules: dict, engine_hash: str | None) -> Path:
    path = tmp_path / "jaxninja" / "backward" / "proofs.json"
    path.parent.mkdir(parents=True)
    table.write(rules, engine_hash, path)
    return tmp_path


def _rules(*statements, verdict="PROVED") -> dict:
    return {
        st.key(s): {"prim": "tanh", "verdict": verdict, "fates": {"dx": verdict}, "statement": s}
        for s in statements
    }


def test_a_hand_edit_of_the_table_changes_its_hash():
    """The shipped table's recorded hash covers its rules as they are (a hand edit of a verdict
    or statement changes the hash, so --check re-proves)."""
    rules = table.load()
    assert len(rules) > 200
    edited = json.loads(json.dumps(rules))
    first = next(iter(edited))
    edited[first]["verdict"] = "NOT PROVED" if rules[first]["verdict"] == "PROVED" else "PROVED"
    assert stamp.engine_hash(edited) != stamp.engine_hash(rules)


def test_an_unchanged_engine_is_one_line_and_no_proof(tmp_path, monkeypatch, capsys):
    rules = _rules(TANH)
    root = _table(tmp_path, rules, stamp.engine_hash(rules))

    def no_proof(entries):
        raise AssertionError("re-proved although nothing changed")

    monkeypatch.setattr("jaxninja.backward.prove.reprove", no_proof)
    assert stamp.derivations_step(root, write=False) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "derivations: backward rule table: 1 verdicts, engine unchanged since they were proved "
        f"(hash {stamp.engine_hash(rules)[:16]})"
    ]


def test_an_engine_change_reproves_and_records(tmp_path, monkeypatch, capsys):
    """A changed engine file changes the hash; the re-proof holds (the same verdict), --check
    passes without writing, and the write mode records the new hash."""
    engine = tmp_path / "engine" / "derivations"
    shutil.copytree(stamp.engine_root(), engine, ignore=shutil.ignore_patterns("__pycache__"))
    rules = _rules(TANH)
    recorded = stamp.engine_hash(rules)
    monkeypatch.setattr(stamp, "engine_root", lambda: engine)
    assert stamp.engine_hash(rules) == recorded  # the copy is the same engine
    (engine / "__init__.py").write_text((engine / "__init__.py").read_text() + "\n# edited\n")
    now = stamp.engine_hash(rules)
    assert now != recorded
    root = _table(tmp_path / "repo", rules, recorded)
    path = root / "jaxninja" / "backward" / "proofs.json"
    assert stamp.derivations_step(root, write=False) == 0
    assert "re-proving 1 rules" in capsys.readouterr().out
    assert table.recorded_hash(path) == recorded
    assert stamp.derivations_step(root, write=True) == 0
    assert table.recorded_hash(path) == now
    assert stamp.derivations_step(root, write=False) == 0
    assert "engine unchanged" in capsys.readouterr().out


@pytest.mark.parametrize("recorded", ["stale", "forged"])
def test_a_verdict_that_does_not_hold_fails(tmp_path, capsys, recorded):
    """A wrong claim stored as PROVED: with a stale hash the re-proof finds it and --check
    fails; a table edited by hand without recomputing the hash is stale by construction."""
    rules = _rules(TANH, WRONG)
    honest = _rules(TANH) | _rules(WRONG, verdict="NOT PROVED")
    engine_hash = stamp.engine_hash(honest) if recorded == "forged" else "0" * 64
    root = _table(tmp_path, rules, engine_hash)
    assert stamp.derivations_step(root, write=True) == 1
    out = capsys.readouterr().out
    assert f"{st.key(WRONG)} tanh: stored PROVED, now NOT PROVED" in out
    assert "1 of 2 verdicts changed" in out
    path = root / "jaxninja" / "backward" / "proofs.json"
    assert table.recorded_hash(path) == engine_hash  # nothing recorded on a failure


def test_a_root_without_the_table_has_nothing_to_reprove(tmp_path, capsys):
    assert stamp.derivations_step(tmp_path, write=False) == 0
    assert "no backward rule table at" in capsys.readouterr().out
