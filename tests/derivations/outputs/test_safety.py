"""Numerically safe kernels: the float32 kernel at inputs scaled up to |x| = 100 against
jax.vjp of the stated forward in float64. Softplus's unsafe form is reported (nan past x = 88),
its stable claim is not; --allow-unsafe writes the unsafe kernel; where the float64 reference
itself overflows nothing is claimed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from derivations.language.layer import Layer, load_layer
from derivations.outputs import verify_float32 as safety
from derivations.outputs.layer_report import run_layer

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_softplus_stable_claim_is_safe_and_written(tmp_path):
    report = run_layer(load_layer(EXAMPLES / "softplus.py"), tmp_path / "k.py", "t")
    assert report.ok and report.unsafe == (), report.text
    assert "dx = dout * jax.nn.sigmoid(x)" in (tmp_path / "k.py").read_text()
    assert "safe at every |x| up to 100" in report.text


def test_softplus_unsafe_claim_is_reported_and_not_written(tmp_path):
    layer = load_layer(EXAMPLES / "softplus_unsafe.py")
    report = run_layer(layer, tmp_path / "k.py", "t")
    assert report.unsafe == (safety.Unsafe("dx", 88, 89, "exp overflows"),)
    assert report.verdict == (
        "PROVED 1/1; numerically unsafe: dx for |x| > 88: exp overflows; kernel not written "
        "(--allow-unsafe writes it) (exit 1)"
    )
    assert report.status == 1 and not (tmp_path / "k.py").exists()
    allowed = run_layer(layer, tmp_path / "k.py", "t", allow_unsafe=True)
    assert allowed.status == 0 and (tmp_path / "k.py").is_file()
    assert "numerically unsafe (allowed by --allow-unsafe): dx for |x| > 88" in allowed.verdict


def test_the_derived_softplus_kernel_is_the_unsafe_one():
    """Without a claim the kernel prints the derived exp(x) * dout / (exp(x) + 1)."""
    layer = load_layer(EXAMPLES / "softplus.py").without_claims()
    report = run_layer(layer, None, "t")
    assert [u.gradient for u in report.unsafe] == ["dx"] and report.status == 1


def test_where_the_float64_reference_overflows_nothing_is_claimed():
    ref = np.array([np.inf, np.inf])
    assert safety._fails(np.array([np.nan, np.nan]), ref, ref) is None
    assert safety._fails(np.array([np.nan, 1.0]), np.array([1.0, 1.0]), np.ones(2)) == (
        "non-finite in float32"
    )
    assert safety._fails(np.array([1.01, 1.0]), np.array([1.0, 1.0]), np.ones(2)) == (
        "off by 1.0e-02 (relative)"
    )
    assert safety._fails(np.array([1.0 + 2e-4, 1.0]), np.array([1.0, 1.0]), np.ones(2)) is None


def test_an_exp_of_a_square_is_unsafe_from_where_float32_overflows():
    """exp(x**2) overflows float32 past |x| = 9.4 and float64 past 26.6: reported from 10,
    and the magnitudes past 26 (reference inf) decide nothing."""
    layer = Layer("sq", ("n",), {"x": ("n",)}, ("out[i] = exp(x[i] * x[i])",))
    report = run_layer(layer, None, "t")
    assert report.unsafe == (safety.Unsafe("dx", 9, 10, "exp overflows"),), report.text


def test_the_cli_flag_allows_an_unsafe_kernel_and_needs_a_layer(tmp_path, capsys):
    from jaxninja._cli import main

    out = tmp_path / "k.py"
    layer = str(EXAMPLES / "softplus_unsafe.py")
    assert main(["derive", "--layer", layer, "--out", str(out)]) == 1 and not out.exists()
    assert main(["derive", "--layer", layer, "--out", str(out), "--allow-unsafe"]) == 0
    assert out.is_file()
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (
        "PROVED 1/1; numerically unsafe (allowed by --allow-unsafe): dx for |x| > 88: exp "
        f"overflows, kernel written: {out} (exit 0)"
    )
    assert main(["derive", "--allow-unsafe"]) == 2
    assert capsys.readouterr().err == "jaxninja: error: --allow-unsafe needs --layer FILE\n"


def test_the_shifted_sequence_cross_entropy_prints_its_derived_kernel_safely():
    """Without its claim, the max-shifted forward's derived gradient holds exp(a - m) *
    exp(m - a) read at the label beside no delta; combined (an identity) it prints, verifies
    and is safe (it had no array form)."""
    layer = load_layer(EXAMPLES / "cross_entropy_sequence.py").without_claims()
    report = run_layer(layer, None, "t")
    assert report.ok and report.unsafe == (), report.text
    derived = "dlogits = -(KroneckerDelta(r, y[p, q]) - counts[p, q, r]/counts_sum[p, q])"
    assert f"derived: {derived}" in report.text
