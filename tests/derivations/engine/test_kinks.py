"""Kinks as people write them: sign, abs, maximum, minimum, where, clip and comparisons, in
forwards and claims, with jax's values at the kink.

Each kink example's natural claim is PROVED and its classic mistake REFUTED with a
counterexample; the derived forms print with the statement's functions (no internal names);
the derivative's values at the kinks are jax's; hostile statements (a where whose branches
swap, a claim that differs only where a kink's argument vanishes at every input of some size,
a claim wrong only near a kink) are refuted or NOT PROVED, never PROVED.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from derivations.engine.derive import check
from derivations.language import functions
from derivations.language.layer import Layer, load_layer
from derivations.outputs.layer_report import run_layer

ROOT = Path(__file__).resolve().parents[3]
KINKED = ("l1_loss", "huber", "smooth_l1", "hard_tanh", "leaky_relu", "relu6")
INTERNAL = ("Step", "Pos(", "absolute(")


def _verdicts(name: str):
    layer = load_layer(ROOT / "examples" / f"{name}.py")
    return layer, [check(layer, key) for key in layer.claim_text]


@pytest.mark.parametrize("name", KINKED)
def test_the_natural_claim_is_proved_and_prints_without_internal_names(name):
    layer, verdicts = _verdicts(name)
    for verdict in verdicts:
        assert verdict.proof.ok, (name, verdict.key, sp.sstr(verdict.difference))
        shown = sp.sstr(verdict.derived)
        assert not any(word in shown for word in INTERNAL), shown


@pytest.mark.parametrize("name", KINKED)
def test_the_classic_mistake_is_refuted_with_a_counterexample(name):
    layer, verdicts = _verdicts(f"{name}_wrong")
    refuted = [v for v in verdicts if not v.proof.ok]
    assert refuted and all(v.counterexample is not None for v in refuted), name
    assert not any(word in sp.sstr(v.difference) for v in refuted for word in INTERNAL)


@pytest.mark.parametrize("name", ["huber", pytest.param("relu6", marks=pytest.mark.slow)])
def test_the_kernel_matches_jax_and_torch(name, tmp_path):
    layer = load_layer(ROOT / "examples" / f"{name}.py")
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.ok, report.text


# ---------------------------------------------------------------- jax's values at the kink
def test_the_derivatives_take_jaxs_values_at_the_kink():
    """grad(abs)(0) = 1, relu'(0) = 0, a tie in maximum or minimum 1/2 each, jnp.clip 1/2 at
    a bound, sign' = 0: the derivative's own values, checked against jax itself."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = sp.Symbol("x")
    cases = [
        (functions.absolute(x), jnp.abs, 0.0),
        (functions.relu(x), jax.nn.relu, 0.0),
        (functions.maximum(x, 1), lambda v: jnp.maximum(v, 1.0), 1.0),
        (functions.minimum(x, 1), lambda v: jnp.minimum(v, 1.0), 1.0),
        (functions.clip(x, -1, 1), lambda v: jnp.clip(v, -1.0, 1.0), 1.0),
        (functions.clip(x, -1, 1), lambda v: jnp.clip(v, -1.0, 1.0), -1.0),
        (functions.sign(x), jnp.sign, 0.0),
    ]
    for expr, function, at in cases:
        ours = sp.diff(expr, x).subs(x, sp.nsimplify(at))
        assert float(ours) == float(jax.grad(function)(at)), expr


# ---------------------------------------------------------------- hostile statements
def _relu_like(forward: str, claim: str, constants=None) -> Layer:
    return Layer(
        "k",
        ("n",),
        {"x": ("n",)},
        (forward,),
        claims={"x": claim},
        constants=constants or {},
    )


def test_a_where_with_its_branches_swapped_is_refuted():
    layer = _relu_like("out[i] = where(x[i] > 0, x[i], 3 * x[i])", "where(x > 0, 3 * dout, dout)")
    verdict = check(layer, "x")
    assert not verdict.proof.ok and verdict.counterexample is not None
    swapped_condition = layer.with_claims({"x": "where(x < 0, dout, 3 * dout)"})
    assert check(swapped_condition, "x").counterexample is not None


def test_a_claim_wrong_only_between_two_kinks_is_refuted():
    """relu(x - 2): (x > 3) differs from (x > 2) on (2, 3) only; the search finds it."""
    layer = _relu_like("out[i] = relu(x[i] - 2)", "dout * (x > 3)")
    verdict = check(layer, "x")
    assert not verdict.proof.ok and verdict.counterexample is not None
    point = verdict.counterexample.inputs
    value = next(v for k, v in point.items() if str(k).startswith("x"))
    assert 2 < value < 3  # where they differ, not on a kink
    assert check(layer.with_claims({"x": "dout * (x > 2)"}), "x").proof.ok


def test_a_kink_that_is_everywhere_at_some_size_is_never_proved():
    """where((n - 5) x > 0, x, 2 x): at n = 5 the condition is 0 > 0 for every input, so the
    derivative is 2 there, and a claim written with >= gives 1. n = 5 is beyond the search's
    sizes; the kink proof must not call it PROVED."""
    layer = _relu_like(
        "out[i] = where((n - 5) * x[i] > 0, x[i], 2 * x[i])",
        "where((n - 5) * x >= 0, dout, 2 * dout)",
    )
    assert not check(layer, "x").proof.ok
    mean_free = Layer(  # x - mean(x) over one element is 0 at D = 1
        "m",
        ("n", "D"),
        {"x": ("n", "D")},
        ("m[i] = mean(x[i, j], j)", "out[i, j] = where(x[i, j] - m[i] > 0, x[i, j], 2 * x[i, j])"),
        claims={"x": "where(x - m[:, None] >= 0, dout, 2 * dout)"},
    )
    assert not check(mean_free, "x").proof.ok


def test_a_condition_that_is_a_kink_on_a_whole_region_is_never_proved():
    """relu(x) > 0 is false on all of x < 0, where relu(x) >= 0 is true: a claim with >= is
    wrong on half the line (the derivative is 2 there, the claim 1). It must not be proved by
    taking relu(x) = 0 as a kink of no volume (the search, which skips points on a kink, finds
    no counterexample: NOT PROVED)."""
    layer = _relu_like(
        "out[i] = where(relu(x[i]) > 0, x[i], 2 * x[i])", "where(relu(x) >= 0, dout, 2 * dout)"
    )
    verdict = check(layer, "x")
    assert not verdict.proof.ok
    right = layer.with_claims({"x": "where(x > 0, dout, 2 * dout)"})
    assert check(right, "x").proof.ok


def test_comparisons_in_a_forward_carry_no_gradient():
    """A forward may use a comparison as a 0/1 factor: (x > 0) * x is relu, with relu's claim."""
    layer = _relu_like("out[i] = (x[i] > 0) * x[i]", "dout * (x > 0)")
    assert check(layer, "x").proof.ok
    assert check(layer.with_claims({"x": "dout"}), "x").counterexample is not None


def test_clip_with_bounds_that_are_not_numbers_is_jnps_own():
    """clip(x, lo, hi) with array bounds is minimum(maximum(x, lo), hi), as jnp.clip computes:
    its gradient in the bounds is proved too."""
    layer = Layer(
        "c",
        ("n",),
        {"x": ("n",), "lo": ("n",)},
        ("out[i] = clip(x[i], lo[i], 5)",),
        claims={"lo": "dout * (lo > x) * (lo < 5)"},
    )
    assert check(layer, "lo").proof.ok


def test_a_kinked_proof_says_it_holds_away_from_the_kinks():
    """PROVED through the kink case split is said as such (the value at a kink is jax's, not
    part of the proof); a proof by simplify alone keeps its own wording."""
    layer = load_layer(ROOT / "examples" / "leaky_relu.py")
    report = run_layer(layer, None, "leaky_relu", verify=False)
    kinked = [v for v in report.verdicts if v.kinked]
    assert kinked and all(v.proof.ok for v in kinked)
    assert "PROVED for every size" in report.text and "away from the kinks" in report.text
    plain = run_layer(load_layer(ROOT / "examples" / "linear.py"), None, "linear", verify=False)
    assert not any(v.kinked for v in plain.verdicts) and "away from the kinks" not in plain.text
