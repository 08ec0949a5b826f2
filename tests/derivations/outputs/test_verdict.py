"""The one verdict line that ends every ``derive --layer`` run, for each exit status README
states: PROVED and CHECKED (0), REFUTED, NOT PROVED, a kernel that fails its verification (1),
no claims (0); the CLI's last line is the verdict and its status the one the line states."""

from __future__ import annotations

import pytest

from derivations.engine import derive
from derivations.engine.proofs import Proof
from derivations.language.layer import Layer
from derivations.outputs import layer_report
from derivations.outputs.layer_report import run_layer


def _layer(**claims: str) -> Layer:
    """out = 3 x + y * y on (n,): cheap to derive and verify."""
    return Layer(
        "t",
        ("n",),
        {"x": ("n",), "y": ("n",)},
        ("out[i] = 3 * x[i] + y[i] * y[i]",),
        claims=claims,
    )


def test_proved_without_out_says_the_kernel_is_not_kept():
    report = run_layer(_layer(x="3 * dout", y="2 * y * dout"), None, "t")
    assert report.status == 0
    assert report.text.splitlines()[-1] == (
        "PROVED 2/2, kernel verified (not kept: name a file with --out) (exit 0)"
    )


def test_no_claims_is_exit_0_with_the_kernel_written(tmp_path):
    report = run_layer(_layer(), tmp_path / "k.py", "t")
    assert (
        report.verdict
        == f"no claims (2 gradients derived), kernel written: {tmp_path / 'k.py'} (exit 0)"
    )


def test_a_claim_checked_at_stated_sizes_is_checked_not_proved(tmp_path, monkeypatch):
    """A verdict the engine could only check exactly over a range of sizes (``checked`` set)
    is CHECKED with that range, never counted as PROVED; exit 0."""
    real = derive.check

    def checked(layer, key):
        verdict = real(layer, key)
        # CHECKED as the engine encodes it: not proved (proof.ok False), an exact range checked
        not_proved = Proof(simplified=False, point=True)
        return verdict._replace(proof=not_proved, checked="n <= 6") if key == "y" else verdict

    monkeypatch.setattr(layer_report, "check", checked)
    report = run_layer(_layer(x="3 * dout", y="2 * y * dout"), tmp_path / "k.py", "t")
    assert report.verdict == (
        f"PROVED 1/2, CHECKED 1/2 (dy exactly for n <= 6), kernel written: {tmp_path / 'k.py'} "
        "(exit 0)"
    )
    assert "CHECKED exactly for n <= 6" in report.text and report.status == 0


def test_refuted_and_not_proved_each_name_their_gradients(tmp_path, monkeypatch):
    report = run_layer(_layer(x="2 * dout", y="2 * y * dout"), tmp_path / "k.py", "t")
    assert report.verdict == "REFUTED: dx (1 of 2); kernel not written (exit 1)"
    monkeypatch.setattr(derive, "SEARCH_SECONDS", -1.0)  # no time to find a counterexample
    report = run_layer(_layer(x="2 * dout", y="y * dout"), tmp_path / "k.py", "t")
    assert report.verdict == "NOT PROVED: dx, dy (2 of 2); kernel not written (exit 1)"
    assert report.status == 1 and not (tmp_path / "k.py").exists()


@pytest.mark.parametrize(("claim", "status"), [("3 * dout", 0), ("-3 * dout", 1)])
def test_the_cli_ends_with_the_verdict_and_its_status(tmp_path, capsys, claim, status):
    from jaxninja._cli import main

    path = tmp_path / "layer.py"
    path.write_text(
        "from derivations import Layer\n"
        "layer = Layer('t', ('n',), {'x': ('n',)}, ('out[i] = 3 * x[i]',),\n"
        f"              claims={{'x': '{claim}'}})\n"
    )
    assert main(["derive", "--layer", str(path)]) == status
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.endswith(f"(exit {status})")
    assert last.startswith("PROVED 1/1" if status == 0 else "REFUTED: dx (1 of 1)")
