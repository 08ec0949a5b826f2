"""derive's budgets: a layer whose derivation passes the time budget or whose derived gradient
passes the size budget is refused in one line (it ran for minutes in silence: a 12-line tanh
chain expands to 2^12 terms), a long derivation says where it is, and an error line that would
echo a 100 KB constant is cut to a few hundred characters."""

from __future__ import annotations

import pytest

from derivations.engine import budget, derive
from derivations.language.layer import Layer
from derivations.language.names import LayerError
from derivations.outputs.layer_report import run_layer


def _chain(lines: int) -> Layer:
    """Each line uses the last twice: the derivative's terms double with each line."""
    forward = ["h1[i, j] = tanh(x[i, j])"]
    forward += [f"h{k}[i, j] = tanh(h{k - 1}[i, j]) * h{k - 1}[i, j]" for k in range(2, lines + 1)]
    forward.append(f"out[i, j] = h{lines}[i, j]")
    return Layer("chain", ("n", "D"), {"x": ("n", "D")}, tuple(forward))


def test_a_gradient_past_the_size_budget_is_refused_in_one_line():
    with pytest.raises(LayerError, match="past the size budget") as err:
        derive.check(_chain(5), "x")  # 17,418 nodes; 4 lines have 3,108
    assert "derived gradient dx has more than 5,000 nodes" in str(err.value)
    assert "\n" not in str(err.value)
    assert derive.check(_chain(4), "x").proof is None  # within the budget


def test_a_derivation_past_the_time_budget_is_refused_with_progress(monkeypatch):
    """A 12-line chain takes 13 s to differentiate; with a 1 s budget the timer stops it in
    the middle of sympy, having said where it was."""
    monkeypatch.setattr(budget, "SECONDS", 1.0)
    monkeypatch.setattr(budget, "PROGRESS_SECONDS", 0.25)
    said: list[str] = []
    with pytest.raises(budget.OverBudget) as err:
        run_layer(_chain(12), None, "t", progress=said.append)
    assert str(err.value).startswith(
        "layer chain: past the derive budget of 1 s while deriving dx (1 of 1)"
    )
    assert said and all(line.startswith("derive: deriving dx (1 of 1), ") for line in said)
    assert said[0].endswith(" s of the 1 s budget")


def test_a_short_run_prints_no_progress():
    said: list[str] = []
    layer = Layer("t", ("n",), {"x": ("n",)}, ("out[i] = 3 * x[i]",), claims={"x": "3 * dout"})
    assert run_layer(layer, None, "t", progress=said.append).ok and said == []


def test_an_error_line_echoing_a_huge_constant_is_capped(tmp_path, capsys):
    from jaxninja._cli import main

    path = tmp_path / "layer.py"
    path.write_text(
        "from derivations import Layer\n"
        "layer = Layer('t', ('n',), {'x': ('n',)}, ('out[i] = c * x[i]',),\n"
        "              constants={'c': '1/' + '9' * 100_000 + 'x'})\n"
    )
    assert main(["derive", "--layer", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500
    assert "constant c: '1/999" in err and "characters cut) ... 999" in err
    assert err.endswith("9x' is not a number\n")
