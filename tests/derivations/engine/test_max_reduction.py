"""A max the output depends on: ``m[i] = max(x[i, j], j)`` differentiated with jax's rule.

jax sends a max's gradient to the max's positions and splits a tie evenly (checked here
against ``jax.grad`` itself). A claim that writes it, ``where(x == m[:, None], dout[:, None], 0)
/ sum(x == m[:, None], axis=1, keepdims=True)``, is PROVED for every size, ties included; the
claims that send the gradient elsewhere (no tie handling, below the max, spread over the row,
the argmin, fixed positions) are REFUTED with a counterexample, never PROVED. The exact
derivative the counterexample search stands on is jax's at tied inputs too.
"""

from __future__ import annotations

import itertools
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivations.engine import derive
from derivations.engine.exact import exact_derivative, written_out
from derivations.language.layer import Layer
from derivations.language.names import LayerError
from derivations.outputs.layer_report import run_layer

RIGHT = "where(x == m[:, None], dout[:, None], 0) / sum(x == m[:, None], axis=1, keepdims=True)"
# the form jaxninja/backward writes for reduce_max: the indicator times dout over the count
BACKWARD_FORM = "(x == m[:, None]) * (dout / sum(x == m[:, None], axis=1))[:, None]"


def _row_max(claim: str | None, forward=("m[i] = max(x[i, j], j)",)) -> Layer:
    return Layer(
        name="row_max",
        axes=("n", "V"),
        inputs={"x": ("n", "V")},
        forward=forward,
        claims={"x": claim} if claim else {},
    )


def _fate(layer: Layer, key: str = "x") -> derive.Verdict:
    return derive.check(layer, key)


def test_jax_splits_a_tie_evenly():
    """The rule the engine follows, as jax computes it (and torch's amax agrees)."""
    x = jnp.array([[2.0, 2.0, 2.0], [1.0, 3.0, 3.0], [5.0, 1.0, 0.0]])
    got = jax.grad(lambda a: jnp.sum(jnp.max(a, axis=1)))(x)
    want = np.array([[1 / 3, 1 / 3, 1 / 3], [0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float64), want.astype(np.float32))


@pytest.mark.parametrize("claim", [RIGHT, BACKWARD_FORM])
def test_the_tie_splitting_claim_is_proved_for_every_size(claim):
    verdict = _fate(_row_max(claim))
    assert verdict.proof.ok and not verdict.kinked
    shown = sp.sstr(verdict.derived)  # in the raw inputs: the max written out
    assert "(max(x[p, i0], i0) == x[p, q])" in shown, shown
    assert "AxisMax" not in shown and "equal" not in shown


@pytest.mark.parametrize(
    "claim",
    [
        "where(x == m[:, None], dout[:, None], 0)",  # no tie handling: whole gradient to each tie
        "where(x < m[:, None], dout[:, None], 0)",  # every position but the max
        "dout[:, None] * (x == x) / V",  # spread over the row
        "where(x >= m[:, None], dout[:, None], 0) / V",  # divided by the row, not the ties
    ],
)
def test_a_claim_sending_the_gradient_elsewhere_is_refuted(claim):
    verdict = _fate(_row_max(claim))
    assert not verdict.proof.ok
    assert verdict.counterexample is not None, verdict.searched
    example = verdict.counterexample
    assert example.truth != example.claim


def test_the_tie_unaware_claim_is_refuted_at_a_tie():
    """Equal to the gradient wherever the max is unique: only a tie refutes it, and the
    search draws one (the claim gives each tied position the whole gradient)."""
    example = _fate(_row_max("where(x == m[:, None], dout[:, None], 0)")).counterexample
    row = [v for k, v in example.inputs.items() if str(k.base) == "x" and k.indices[0] == 0]
    assert len(row) != len(set(row))  # a tie in the row that differs
    assert example.claim == 2 * example.truth or example.truth == 0


def test_the_argmin_and_the_first_position_are_refuted():
    """The argmin (through a second max of -x, a shift the output does not depend on), and the
    gradient always at fixed positions (a 0/1 mask e, any values: a first-column one-hot)."""
    layer = _row_max(
        "where(-x == lo[:, None], dout[:, None], 0)"
        " / sum(-x == lo[:, None], axis=1, keepdims=True)",
        forward=("lo[i] = max(-x[i, j], j)", "m[i] = max(x[i, j], j)"),
    )
    decided = derive.with_max_reductions(layer)
    assert decided.shifts == ("lo",) and decided.reductions == ("m",)
    verdict = _fate(layer)
    assert not verdict.proof.ok and verdict.counterexample is not None
    first = Layer(
        name="first",
        axes=("n", "V"),
        inputs={"x": ("n", "V"), "e": ("V",)},
        fixed=("e",),
        forward=("m[i] = max(x[i, j], j)",),
        claims={"x": "dout[:, None] * e"},  # e: 0/1, any values (one-hot of column 0 or not)
    )
    verdict = _fate(first)
    assert not verdict.proof.ok and verdict.counterexample is not None


def test_a_max_over_a_middle_axis_through_a_chain():
    """Max over time of tanh(x * w), squared: proved with the chain rule's factors in place,
    and refuted with tanh's derivative forgotten."""
    forward = (
        "h[b, t, c] = tanh(x[b, t, c] * w[c])",
        "p[b, c] = max(h[b, t, c], t)",
        "out[b, c] = p[b, c] * p[b, c]",
    )
    spread = "where(h == p[:, None, :], (2 * p * dout)[:, None, :], 0)"
    count = "sum(h == p[:, None, :], axis=1, keepdims=True)"

    def layer(claim):
        return Layer(
            name="max_pool_time",
            axes=("B", "T", "C"),
            inputs={"x": ("B", "T", "C"), "w": ("C",)},
            forward=forward,
            claims={"x": claim},
        )

    assert _fate(layer(f"{spread} / {count} * (1 - h**2) * w")).proof.ok
    wrong = _fate(layer(f"{spread} / {count} * w"))
    assert not wrong.proof.ok and wrong.counterexample is not None


def test_a_shift_stays_a_shift():
    """The max trick: the output does not depend on the max, so it is held as an input."""
    layer = Layer(
        name="softmax_shifted",
        axes=("n", "V"),
        inputs={"x": ("n", "V")},
        forward=(
            "m[i] = max(x[i, j], j)",
            "e[i, j] = exp(x[i, j] - m[i])",
            "out[i, j] = e[i, j] / sum(e[i, k], k)",
        ),
    )
    decided = derive.with_max_reductions(layer)
    assert decided.shifts == ("m",) and decided.reductions == ()


def test_the_exact_derivative_is_jax_at_ties():
    """The written-out max's exact derivative (what refutations stand on) against jax.grad,
    at integer inputs from {0, 1, 2}: ties in most rows."""
    layer = derive.with_max_reductions(_row_max(None))
    total = derive.objective(layer).xreplace({layer.axes[0]: 2, layer.axes[1]: 3})
    total = written_out(total)
    rng = random.Random(7)
    for _ in range(20):
        x = np.array([[rng.randint(0, 2) for _ in range(3)] for _ in range(2)], dtype=float)
        up = np.array([rng.randint(1, 3) for _ in range(2)], dtype=float)
        inputs = {
            sp.IndexedBase("x")[a, b]: sp.Integer(int(x[a, b])) for a in range(2) for b in range(3)
        }
        inputs |= {sp.IndexedBase("dout")[a]: sp.Integer(int(up[a])) for a in range(2)}
        want = jax.vjp(lambda a: jnp.max(a, axis=1), jnp.asarray(x))[1](jnp.asarray(up))[0]
        for a, b in itertools.product(range(2), range(3)):
            got = exact_derivative(total, sp.IndexedBase("x")[a, b], inputs)
            assert float(got) == pytest.approx(float(want[a, b]), rel=1e-6), (x, a, b)


def test_the_kernel_is_written_and_matches_jax_at_ties(tmp_path):
    report = run_layer(_row_max(RIGHT), tmp_path / "k.py", "test")
    assert report.ok, report.text
    namespace: dict = {}
    exec((tmp_path / "k.py").read_text(), namespace)  # noqa: S102 - the kernel just written
    x = jnp.array([[2.0, 2.0, 2.0], [1.0, 3.0, 3.0], [5.0, 1.0, 0.0]])
    up = jnp.array([1.0, -2.0, 3.0])
    want = jax.vjp(lambda a: jnp.max(a, axis=1), x)[1](up)[0]
    np.testing.assert_allclose(namespace["row_max_backward"](up, x), want, rtol=0, atol=0)


def test_a_refuted_max_claim_writes_no_kernel(tmp_path):
    report = run_layer(_row_max("where(x == m[:, None], dout[:, None], 0)"), tmp_path / "k.py")
    assert not report.ok and not (tmp_path / "k.py").exists()


def test_a_max_the_output_depends_on_with_shifted_reads_is_refused():
    layer = Layer(
        name="shifted_max",
        axes=("B", "T", "K"),
        inputs={"x": ("B", "T"), "w": ("K",)},
        forward=("y[b, t] = sum(w[k] * x[b, t - k], k)", "out[b] = max(y[b, t], t)"),
        shapes={"y": ("B", "T")},
        check_sizes={"B": 1, "T": 3, "K": 2},
    )
    with pytest.raises(LayerError, match="a max differentiated is not supported"):
        derive.with_max_reductions(layer)


FLAT = (
    "(x == out[:, None, None]) * (dout / sum(x == out[:, None, None], axis=(1, 2)))[:, None, None]"
)


def _two_axes(claim: str, forward=("out[i] = max(x[i, j, k], j, k)",)) -> Layer:
    return Layer(
        name="max_two_axes",
        axes=("n", "H", "W"),
        inputs={"x": ("n", "H", "W")},
        forward=forward,
        claims={"x": claim},
    )


def test_a_max_over_two_indices_is_one_max_ties_split_over_both():
    """``max(x[i, j, k], j, k)`` is jnp.max(x, axis=(1, 2)): PROVED with the count over both
    axes; a count over one axis, or none, is refuted at a tie."""
    assert _fate(_two_axes(FLAT)).proof.ok
    for wrong in (
        "(x == out[:, None, None]) / sum(x == out[:, None, None], axis=1, keepdims=True)"
        " * dout[:, None, None]",
        "(x == out[:, None, None]) * dout[:, None, None]",
    ):
        verdict = _fate(_two_axes(wrong))
        assert not verdict.proof.ok and verdict.counterexample is not None


def test_two_nested_maxes_are_not_one_max_over_both_axes():
    """Nested, a tie splits per level (a row of two ties, then each row's ties): the flat
    claim is refuted against the nested forward, never PROVED."""
    nested = ("a[i, j] = max(x[i, j, k], k)", "out[i] = max(a[i, j], j)")
    verdict = _fate(_two_axes(FLAT, forward=nested))
    assert not verdict.proof.ok and verdict.counterexample is not None


def test_the_exact_derivative_of_a_max_over_two_axes_is_jax_at_ties():
    layer = derive.with_max_reductions(_two_axes(FLAT))
    sizes = dict(zip(layer.axes, (1, 2, 2), strict=True))
    total = written_out(derive.objective(layer).xreplace(sizes))
    x_base, up_base = sp.IndexedBase("x"), sp.IndexedBase("dout")
    for values in itertools.product((0, 1), repeat=4):
        x = np.array(values, dtype=float).reshape(1, 2, 2)
        inputs = {x_base[0, a, b]: sp.Integer(int(x[0, a, b])) for a in range(2) for b in range(2)}
        inputs[up_base[0]] = sp.Integer(1)
        want = jax.grad(lambda a: jnp.sum(jnp.max(a, axis=(1, 2))))(jnp.asarray(x))
        for a, b in itertools.product(range(2), range(2)):
            got = exact_derivative(total, x_base[0, a, b], inputs)
            assert float(got) == pytest.approx(float(want[0, a, b]), rel=1e-6), (values, a, b)


def test_a_scalar_max_is_a_loss_and_its_claim_may_name_it(tmp_path):
    """``top = max(x[i], i)``: a scalar line (it crashed the shift check with a traceback);
    the claim names the output, so the kernel computes it."""
    layer = Layer(
        name="top",
        axes=("n",),
        inputs={"x": ("n",)},
        forward=("top = max(x[i], i)",),
        claims={"x": "(x == top) / sum(x == top)"},
    )
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.ok, report.text
    unsplit = derive.check(layer.with_claims({"x": "(x == top)"}), "x")
    assert not unsplit.proof.ok and unsplit.counterexample is not None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("m[i] = max(x[i, j], j, j)", "index j is reduced twice"),
        ("m[i] = max(x[i, j], k)", "does not occur"),
        ("m[i] = max(x[i, j])", "takes an expression and the indices it reduces"),
        ("m[i] = 2 * max(x[i, j], j)", "must be a line of its own"),
    ],
)
def test_a_malformed_max_is_one_line(line, message):
    with pytest.raises(LayerError, match="forward line 1") as caught:
        _row_max(None, forward=(line,))
    assert message in str(caught.value) and "\n" not in str(caught.value)
