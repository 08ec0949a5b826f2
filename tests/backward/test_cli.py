"""``jaxninja backward``: checked before written, never over a file it did not write, and a
generated file that ``check --model`` reads as a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxninja._cli import main
from jaxninja.backward import rules
from jaxninja.gradcheck.model_check import cross_check_model

WAVENET = Path(__file__).resolve().parents[2] / "examples" / "models" / "wavenet.py"


@pytest.mark.slow
def test_out_is_a_checked_model_file(tmp_path, names_txt, capsys):
    out = tmp_path / "wavenet_backward.py"
    assert main(["backward", "--model", str(WAVENET), "--out", str(out)]) == 0
    assert "44/44 within contract" in capsys.readouterr().out
    check = cross_check_model(out, against=("jax",))
    assert check.ok and len(check.rows) == 44
    # a second run may replace the file it wrote
    assert main(["backward", "--model", str(WAVENET), "--out", str(out)]) == 0


def test_never_overwrites_a_foreign_file(tmp_path, capsys):
    out = tmp_path / "mine.py"
    out.write_text("my own work\n")
    assert main(["backward", "--model", str(WAVENET), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was not written by jaxninja backward" in err[0]
    assert out.read_text() == "my own work\n"


def test_a_failing_row_writes_nothing(tmp_path, names_txt, capsys, monkeypatch):
    """A rule whose code is wrong (tanh's gradient without its ``t * h`` term) is caught by
    the check table: exit 1, the table shown, no file."""
    code, fwd, claim = rules.UNARY["tanh"]
    monkeypatch.setitem(rules.UNARY, "tanh", ("{d} * (1 - {out})", fwd, claim))
    out = tmp_path / "wavenet_backward.py"
    assert main(["backward", "--model", str(WAVENET), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "SOME ROWS BREAK THE CONTRACT" in captured.out
    assert "nothing written" in captured.err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--model", "no/such/file.py"], "no/such/file.py"),
        (["--model", str(WAVENET), "--out", "/no/such/dir/x.py"], "does not exist"),
        (["--model", str(WAVENET), "--out", str(WAVENET)], "the model file itself"),
    ],
)
def test_bad_flags_are_one_line(argv, needle, capsys):
    assert main(["backward", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
