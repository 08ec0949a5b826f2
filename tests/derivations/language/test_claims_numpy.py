"""Claims are read as numpy reads them: a transposed gradient, or one that broadcasts only
because two sizes are equal, is REFUTED with its reason and a counterexample, never PROVED and
never silently repaired in the printed kernel.

numpy itself is the independent judge here: each claim's text is run with numpy on arrays of
the declared shapes (:func:`numpy_shape`), with no code of the engine, at the counterexample's
sizes (it must fail, or give another shape than the input's) and, for every example's claim, at
sizes where all axes differ (it must give the input's shape).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derivations.engine.derive import check
from derivations.language.claims import ShapeMismatch, is_index_claim
from derivations.language.layer import Layer, load_layer
from derivations.outputs.layer_report import run_layer

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def numpy_shape(layer: Layer, text: str, sizes: dict) -> tuple[int, ...]:
    """The shape numpy gives the claim's text on arrays of the declared shapes at ``sizes``
    (the names bound to ones; raises what numpy raises)."""
    at = {str(k): v for k, v in sizes.items()}

    def ones(shape):  # a size may be an expression of the axes (L = 2*T)
        return np.ones(tuple(int(sp.sympify(s).xreplace(sizes)) for s in shape))

    space = {key: ones(shape) for key, shape in layer.inputs.items()}
    space.update({str(line.target): ones(line.shape) for line in layer.lines})
    if not layer.is_loss:
        space[str(layer.upstream)] = ones(layer.output.shape)
    labels = {key: (shape, classes) for key, (shape, classes) in layer.labels.items()}
    space.update(at)
    space.update({str(k): float(v) for k, v in layer.constant_values.items()})
    space.update(
        sum=np.sum,
        mean=np.mean,
        einsum=np.einsum,
        exp=np.exp,
        log=np.log,
        sqrt=np.sqrt,
        tanh=np.tanh,
        erf=np.tanh,  # a shape only
        sigmoid=np.tanh,
        abs=np.abs,
        relu=np.abs,
        maximum=np.maximum,
        minimum=np.minimum,
        sign=np.sign,
        clip=np.clip,
        where=np.where,
        pi=np.pi,
        one_hot=lambda y: np.ones((*y.shape, at[str(labels[_label_name(space, y)][1])])),
    )
    for key, (shape, _) in labels.items():
        space[key] = np.zeros(tuple(at[str(s)] for s in shape), dtype=int)
    with np.errstate(all="ignore"):
        return np.shape(eval(text, {"__builtins__": {}}, space))  # noqa: S307 - our own claims


def _label_name(space: dict, array) -> str:
    return next(k for k, v in space.items() if v is array)


def fits(layer: Layer, key: str, got: tuple[int, ...], sizes: dict) -> bool:
    """numpy's broadcast_to of the claim's shape (leading 1s dropped) onto the input's."""
    want = tuple(int(sp.sympify(s).xreplace(sizes)) for s in layer.inputs[key])
    got = list(got)
    while len(got) > len(want) and got[0] == 1:
        got.pop(0)
    try:
        np.broadcast_to(np.ones(got), want)
    except ValueError:
        return False
    return True


def _refuted_by_shape(layer: Layer, key: str) -> ShapeMismatch:
    """The verdict is REFUTED on the claim's shape; numpy agrees at the counterexample."""
    verdict = check(layer, key)
    assert not verdict.proof.ok and verdict.claim is None and verdict.mismatch is not None
    mismatch = verdict.mismatch
    assert "\n" not in mismatch.reason and "\n" not in mismatch.example
    try:
        got = numpy_shape(layer, layer.claim_text[key], mismatch.sizes)
    except ValueError:
        return mismatch  # numpy refuses it there: a shape error
    assert not fits(layer, key, got, mismatch.sizes), (got, mismatch)
    return mismatch


# ---------------------------------------------------------------- the two cases
def _linear_transposed(claims: dict) -> Layer:
    """y = x @ A.T with A (H, D): dA = dout.T @ x is (H, D)."""
    return Layer(
        "lin",
        ("n", "D", "H"),
        {"x": ("n", "D"), "A": ("H", "D")},
        ("y[i, k] = sum(x[i, j] * A[k, j], j)",),
        claims=claims,
    )


def test_a_transposed_weight_gradient_is_refuted_with_the_reason():
    mismatch = _refuted_by_shape(_linear_transposed({"A": "x.T @ dout"}), "A")
    assert mismatch.reason.startswith(
        "the claim is (D, H), A is (H, D): as code this is A's gradient transposed"
    )
    sizes = {str(k): v for k, v in mismatch.sizes.items()}
    assert sizes["D"] != sizes["H"]
    right = _linear_transposed({"A": "dout.T @ x", "x": "dout @ A"})
    assert check(right, "A").proof.ok and check(right, "x").proof.ok


def test_an_elementwise_transpose_is_refuted():
    layer = Layer(
        "mul",
        ("n", "D"),
        {"x": ("n", "D"), "y": ("n", "D")},
        ("out[i, j] = x[i, j] * y[i, j]",),
        claims={"x": "dout.T * y", "y": "dout * x"},
    )
    mismatch = _refuted_by_shape(layer, "x")
    assert "'dout.T * y' broadcasts (D, n) against (n, D)" in mismatch.reason
    assert check(layer, "y").proof.ok


def test_the_refutation_exits_1_and_the_kernel_is_not_repaired(tmp_path):
    """Through the whole run: REFUTED with the reason and the counterexample's sizes, exit 1;
    no kernel is printed or written (before, the claim was printed with a .T added)."""
    layer = _linear_transposed({"A": "x.T @ dout", "x": "dout @ A"})
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.not_proved == ["A"] and report.status == 1
    assert "REFUTED: the claim is (D, H), A is (H, D)" in report.text
    assert "counterexample: at n=2, D=2, H=3, the claim is (2, 3) and A is (3, 2)" in report.text
    assert report.kernel_text is None and not (tmp_path / "k.py").exists()
    assert report.text.splitlines()[-1].startswith("REFUTED: dA (1 of 2)")


# ---------------------------------------------------------------- broadcast by coincidence
@pytest.mark.parametrize(
    ("text", "words"),
    [
        # the old by-name reading of the 9 rewritten claims: n against D
        ("rinv * (g * dout)", "as numpy would write it: rinv[:, None]"),
        ("g * dout * rinv", "as numpy would write it: rinv[:, None]"),
        ("dout - mean(dout, axis=1)", "mean(dout, axis=1)[:, None]"),
        ("einsum('nd,nd->nd', dout, dout.T)", "letter 'n' runs over n and over D"),
        ("(dout.T @ dout) * g", "broadcasts (D, D) against (D,)"),  # right, then checked below
        ("dout @ g[:, None] * rinv", "the claim is (n, n), x is (n, D)"),  # (n, 1) * (n,)
    ],
)
def test_broadcasting_only_where_sizes_coincide_is_refuted(text, words):
    layer = Layer(
        "rms",
        ("n", "D"),
        {"x": ("n", "D"), "g": ("D",)},
        ("rinv[i] = mean(x[i, j]**2, j)", "out[i, j] = g[j] * x[i, j] * rinv[i]"),
        claims={"x": text},
    )
    if text.startswith("(dout.T @ dout)"):  # (D, D) * (D,) is numpy's: D with D, but the
        verdict = check(layer, "x")  # result (D, D) is not x's (n, D)
        assert verdict.mismatch is not None and "the claim is (D, D), x is (n, D)" in (
            verdict.mismatch.reason
        )
        return
    mismatch = _refuted_by_shape(layer, "x")
    assert words in mismatch.reason, mismatch.reason


def test_the_rewritten_claim_with_its_new_axis_is_proved():
    layer = Layer(
        "rms",
        ("n", "D"),
        {"x": ("n", "D"), "g": ("D",)},
        ("rinv[i] = mean(x[i, j]**2, j)", "out[i, j] = g[j] * x[i, j] * rinv[i]"),
        claims={
            "x": "rinv[:, None] * g * dout + 2 * x / D * sum(g * dout * x, axis=1, keepdims=True)",
            "g": "sum(dout * x * rinv[:, None], axis=0)",
        },
    )
    assert check(layer, "x").proof.ok and check(layer, "g").proof.ok


# ---------------------------------------------------------------- hostile: never PROVED
def test_a_square_weight_transposed_is_refuted_by_value():
    """With W (D, D) the transpose has the right shape: numpy runs it at every size, and the
    values refute it (the counterexample's sizes have D >= 2)."""
    layer = Layer(
        "sq",
        ("n", "D"),
        {"x": ("n", "D"), "W": ("D", "D")},
        ("out[i, k] = sum(x[i, j] * W[j, k], j)",),
        claims={"x": "dout @ W", "W": "dout.T @ x"},
    )
    for key in ("x", "W"):
        verdict = check(layer, key)
        assert not verdict.proof.ok and verdict.counterexample is not None
        assert verdict.counterexample.sizes[layer.sizes["D"]] >= 2


def test_a_row_statistic_on_a_square_input_is_positional_and_refuted_by_value():
    """x (n, n): r (n,) against it is numpy's (r along the last axis), legal at every size;
    the forward scales rows, so that reading is refuted by value, and r[:, None] proved."""
    statement = dict(
        name="sq",
        axes=("n",),
        inputs={"x": ("n", "n")},
        forward=("r[i] = sum(x[i, j], j)", "out[i, j] = x[i, j] * r[i]"),
    )
    wrong = Layer(**statement, claims={"x": "dout * r + sum(dout * x, axis=1)"})
    verdict = check(wrong, "x")
    assert not verdict.proof.ok and verdict.counterexample is not None
    right = Layer(**statement, claims={"x": "dout * r[:, None] + sum(dout * x, axis=1)[:, None]"})
    assert check(right, "x").proof.ok


@pytest.mark.parametrize(
    "text",
    [
        "sum(dout, axis=1, keepdims=True)",  # (n, 1): broadcasts to (n, D), wrong values
        "sum(dout, axis=0)",  # (D,): the same row for every row, wrong values
    ],
)
def test_a_claim_broadcast_to_the_input_is_judged_by_its_values(text):
    layer = Layer("id", ("n", "D"), {"x": ("n", "D")}, ("out[i, j] = x[i, j]",), claims={"x": text})
    verdict = check(layer, "x")
    assert not verdict.proof.ok and verdict.counterexample is not None


def test_a_transpose_undone_is_no_transpose():
    layer = Layer(
        "id", ("n", "D"), {"x": ("n", "D")}, ("out[i, j] = x[i, j]",), claims={"x": "dout.T.T"}
    )
    assert check(layer, "x").proof.ok


def test_a_row_result_for_a_matrix_input_says_how_numpy_writes_it():
    layer = Layer(
        "row",
        ("n", "D"),
        {"x": ("n", "D")},
        ("s[i] = sum(x[i, j], j)", "out[i] = s[i] * s[i]"),
        claims={"x": "2 * s * dout"},
    )
    mismatch = _refuted_by_shape(layer, "x")
    assert mismatch.reason == (
        "the claim is (n,), x is (n, D): as code it is not an array of x's shape; as numpy "
        "would write it: (2 * s * dout)[:, None]"
    )
    right = layer.with_claims({"x": "(2 * s * dout)[:, None] + 0 * x"})
    assert check(right, "x").proof.ok


def test_permuted_axes_at_rank_3_are_refuted():
    layer = Layer(
        "p3",
        ("B", "T", "C"),
        {"x": ("B", "T", "C")},
        ("out[i, j, k] = x[i, j, k]",),
        claims={"x": "einsum('btc->cbt', dout)"},
    )
    mismatch = _refuted_by_shape(layer, "x")
    assert "axes permuted; as numpy would write it: jnp.transpose(" in mismatch.reason


def test_every_example_claim_has_its_inputs_shape_in_numpy():
    """Each example's claims (right and wrong), run by numpy at sizes where every axis differs,
    give an array that fits its input; and none is a shape mismatch."""
    for path in EXAMPLES:
        layer = load_layer(path)
        assert not layer.mismatches, (path.name, layer.mismatches)
        sizes = {axis: 2 + k for k, axis in enumerate(layer.axes)}
        for key, text in layer.claim_text.items():
            if is_index_claim(text):  # index notation (shifted reads): not numpy's to run
                continue
            got = numpy_shape(layer, text, sizes)
            assert fits(layer, key, got, sizes), (path.name, key, got)


def test_through_the_cli_a_transposed_claim_exits_1_with_its_reason(tmp_path, capsys):
    """A user's view: `jaxninja derive --layer FILE` on the issue's y = x @ A.T case."""
    from jaxninja._cli import main

    path = tmp_path / "lin.py"
    path.write_text(
        "layer = Layer(name='lin', axes=('n', 'D', 'H'), inputs={'x': ('n', 'D'), "
        "'A': ('H', 'D')}, forward=('y[i, k] = sum(x[i, j] * A[k, j], j)',), "
        "claims={'x': 'dout @ A', 'A': 'x.T @ dout'})\n"
    )
    status = main(["derive", "--layer", str(path), "--out", str(tmp_path / "k.py")])
    out = capsys.readouterr().out
    assert status == 1
    assert "REFUTED: the claim is (D, H), A is (H, D): as code this is A's gradient " in out
    assert "counterexample: at n=2, D=2, H=3, the claim is (2, 3) and A is (3, 2)" in out
    assert "PROVED for every size n, D, H >= 1" in out  # dx, the right one
