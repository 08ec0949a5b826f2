"""``derivations.check_layer``: the derive run from Python, and its display in Jupyter (rendered
by IPython's own display formatter, as a notebook cell would)."""

from __future__ import annotations

import pytest

import derivations
from derivations.language.layer import Layer

RIGHT = Layer(
    "lin",
    ("n", "D"),
    {"x": ("n", "D"), "b": ("D",)},
    ("out[i, j] = 3 * x[i, j] + b[j]",),
    claims={"x": "3 * dout", "b": "sum(dout, axis=0)"},
)


def _formatted(obj) -> dict:
    shell = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell.instance()
    data, _ = shell.display_formatter.format(obj)
    return data


def test_check_layer_returns_verdicts_forms_and_timings():
    result = derivations.check_layer(RIGHT)
    assert result.ok and result.verdict.startswith("PROVED 2/2")
    assert [(g.name, g.fate) for g in result.gradients] == [("dx", "PROVED"), ("db", "PROVED")]
    assert str(result.gradients[0].derived) == "3*dout[p, q]"
    assert "verify" in result.seconds and str(result).endswith(result.verdict + "\n")


def test_a_notebook_shows_a_table_and_the_math():
    data = _formatted(derivations.check_layer(RIGHT))
    markdown, latex = data["text/markdown"], data["text/latex"]
    assert "| gradient | claim | verdict | s |" in markdown
    assert "| `dx` | `3 * dout` | PROVED |" in markdown
    assert r"- derived: $\mathrm{dx} = 3 \mathrm{dout}_{p,q}$" in markdown
    assert markdown.rstrip().endswith("(exit 0)**")
    assert latex.startswith("$$\\begin{aligned}") and r"\mathrm{db} &= \sum_{" in latex


def test_a_refuted_claim_shows_its_counterexample(tmp_path):
    wrong = RIGHT.with_claims({"x": "2 * dout", "b": "sum(dout, axis=0)"})
    result = derivations.check_layer(wrong, out=tmp_path / "k.py")
    assert not result.ok and not (tmp_path / "k.py").exists()
    assert result.gradients[0].fate == "REFUTED" and result.gradients[0].counterexample
    markdown = _formatted(result)["text/markdown"]
    assert "| `dx` | `2 * dout` | REFUTED |" in markdown
    assert "  - counterexample at n=1, D=1: true $" in markdown
    assert "**REFUTED: dx (1 of 2); kernel not written (exit 1)**" in markdown


def test_a_path_goes_through_the_same_gate(tmp_path):
    from jaxninja.errors import ConfigError

    with pytest.raises(ConfigError, match="is a directory, not a layer file"):
        derivations.check_layer(tmp_path)
