"""Shifted and strided reads (``x[b, 2*t + k - P]``, ``c // C``, ``c % C``): the statement
language, the exact check (CHECKED at every size up to stated bounds, never PROVED), the
classic mistakes refuted at their smallest sizes, and hostile claims that try to be PROVED.

Each counterexample is re-evaluated here by another route: the forward and the claim run by
numpy on the counterexample's exact inputs (as Python Fractions, exact), with the reads outside
the array written as explicit bounds checks, and the gradient taken by finite difference, which
is exact for these forwards (each is linear in the input differentiated).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp

from derivations.engine import shifts
from derivations.engine.derive import check
from derivations.engine.exact import written_out
from derivations.language import positions
from derivations.language.layer import Layer, load_layer
from derivations.language.names import LayerError
from derivations.outputs.layer_report import run_layer
from tests.helpers import run_command

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
PAIRS = ("conv1d", "causal_window", "flatten_consecutive")
# the claims proved symbolically; every other right claim is CHECKED only (FlattenConsecutive's
# dx: its deltas of c // C and c % C are not affine, so nothing sums them out)
PROVED = {"conv1d": {"x", "w", "bias"}, "causal_window": {"x", "w"}, "flatten_consecutive": {"W"}}


def conv(claims: dict, **extra) -> Layer:
    """A stride-1 'valid' convolution, L = T + K - 1: y[b, t] = sum_k x[b, t + k] w[k]."""
    spec = {
        "name": "conv",
        "axes": ("B", "T", "K"),
        "sizes": {"L": "T + K - 1"},
        "inputs": {"x": ("B", "L"), "w": ("K",)},
        "forward": ("y[b, t] = sum(x[b, t + k] * w[k], k)",),
        "shapes": {"y": ("B", "T")},
        "claims": claims,
        "check_sizes": {"B": 1, "T": 4, "K": 3},
    }
    return Layer(**{**spec, **extra})


def shift(claims: dict, **extra) -> Layer:
    """y[b, t] = x[b, t - 1]: the last element of x is never read, y[b, 0] reads zero."""
    spec = {
        "name": "shift",
        "axes": ("B", "T"),
        "inputs": {"x": ("B", "T")},
        "forward": ("y[b, t] = x[b, t - 1]",),
        "shapes": {"y": ("B", "T")},
        "claims": claims,
        "check_sizes": {"B": 1, "T": 5},
    }
    return Layer(**{**spec, **extra})


def verdict(layer: Layer, key: str):
    return check(layer, key)


def assert_checked(v, bounds: str) -> None:
    """CHECKED at every size up to ``bounds``, and no symbolic proof: not PROVED."""
    assert v.checked == bounds, v
    assert v.counterexample is None
    assert not v.proof.ok, "CHECKED alone is never PROVED"


def assert_proved(v, bounds: str) -> None:
    """PROVED symbolically, and CHECKED exactly up to ``bounds`` as well."""
    assert v.proof.ok, v
    assert v.checked == bounds and v.counterexample is None, v


def assert_refuted(v):
    assert not v.proof.ok and not v.checked, v
    assert v.counterexample is not None, v.searched
    assert v.counterexample.truth != v.counterexample.claim
    return v.counterexample


# ---------------------------------------------------------------- the examples, right and wrong
@pytest.mark.parametrize("name", PAIRS)
def test_each_example_is_checked_and_its_wrong_twin_refuted(name, tmp_path):
    right = run_layer(load_layer(EXAMPLES / f"{name}.py"), tmp_path / "k.py", name)
    assert right.ok
    assert all(v.checked for v in right.verdicts), right.text
    assert {v.key for v in right.verdicts if v.proof.ok} == PROVED[name]
    assert right.text.count("  PROVED for every size") == len(PROVED[name])
    assert right.text.count("  CHECKED exactly for") == len(right.verdicts) - len(PROVED[name])
    assert right.text.splitlines()[-1].startswith(f"PROVED {len(PROVED[name])}/")
    assert not (tmp_path / "k.py").exists(), "no kernel is written for shifted reads"
    wrong = run_layer(load_layer(EXAMPLES / f"{name}_wrong.py"), tmp_path / "k.py", name)
    assert not wrong.ok
    refuted = [v for v in wrong.verdicts if v.counterexample is not None]
    assert len(refuted) == len(wrong.layer.claim_text) - (name == "conv1d"), wrong.text
    assert wrong.text.splitlines()[-1].startswith("REFUTED")


def test_through_the_cli_checked_exits_0_and_refuted_exits_1():
    done = run_command("derive", "--layer", "examples/flatten_consecutive.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROVED 1/2, CHECKED 1/2 (dx exactly for B <= 2, T2 <= 2, C <= 3, H <= 2)" in done.stdout
    done = run_command("derive", "--layer", "examples/causal_window_wrong.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\nREFUTED: dx, dw (2 of 2)" in done.stdout


def test_the_verdict_states_the_bounds_of_the_check():
    """A claim right up to T = 4 and wrong from T = 5, checked up to T = 4: exit 0, and the
    verdict says exactly how far it was checked."""
    layer = shift({"x": "dx[b, s] = dout[b, s + 1] + dout[b, s + 4]"}, check_sizes={"T": 4})
    report = run_layer(layer, None, "shift")
    assert report.ok
    assert "  CHECKED exactly for B <= 4, T <= 4: " in report.text
    assert "not proved beyond them" in report.text
    assert report.text.splitlines()[-1] == (
        "CHECKED 1/1 (dx exactly for B <= 4, T <= 4); kernel not generated (shifted reads or "
        "declared sizes) (exit 0)"
    )


# ---------------------------------------------------------------- the classic mistakes
def _numpy_conv_truth(example, stride: int, pad: int) -> Fraction:
    """d sum(dout * y) / d element for y[b, t] = sum_k x[b, stride*t + k - pad] w[k], by a
    finite difference of step 1 (exact: linear in x and in w) on the counterexample's exact
    inputs, in Python Fractions, reads outside x skipped by an explicit bounds check."""
    sizes = {str(k): v for k, v in example.sizes.items()}
    values = {sp.sstr(k): Fraction(str(v)) for k, v in example.inputs.items()}
    length = sum(1 for k in values if k.startswith("x[0,"))

    def loss(get: dict) -> Fraction:
        total = Fraction(0)
        for b in range(sizes["B"]):
            for t in range(sizes["T"]):
                y = Fraction(0)
                for k in range(sizes["K"]):
                    at = stride * t + k - pad
                    if 0 <= at < length:
                        y += get[f"x[{b}, {at}]"] * get[f"w[{k}]"]
                total += get[f"dout[{b}, {t}]"] * y
        return total

    element = sp.sstr(example.element)
    return loss({**values, element: values[element] + 1}) - loss(values)


def test_a_flipped_kernel_in_dx_is_refuted_at_the_smallest_sizes():
    v = verdict(conv({"x": "dx[b, s] = sum(dout[b, s + k] * w[k], k)"}), "x")
    example = assert_refuted(v)
    assert {str(k): n for k, n in example.sizes.items()} == {"B": 1, "T": 1, "K": 2}
    assert _numpy_conv_truth(example, 1, 0) == Fraction(str(example.truth))


def test_the_right_dx_is_proved():
    v = verdict(conv({"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"}), "x")
    assert_proved(v, "B <= 1, T <= 4, K <= 3")


def test_off_by_one_padding_is_refuted():
    layer = conv(
        {"w": "dw[k] = sum(dout[b, t] * x[b, t + k], b, t)"},  # the padding dropped
        forward=("y[b, t] = sum(x[b, t + k - P] * w[k], k)",),
        constants={"P": 1},
        sizes={"L": "T"},
    )
    example = assert_refuted(verdict(layer, "w"))
    assert _numpy_conv_truth(example, 1, 1) == Fraction(str(example.truth))
    right = layer.with_claims({"w": "dw[k] = sum(dout[b, t] * x[b, t + k - P], b, t)"})
    assert_proved(verdict(right, "w"), "B <= 1, T <= 4, K <= 3")


@pytest.mark.parametrize(
    "text",
    [
        "dx[b, s] = sum(dout[b, s - k] * w[k], k)",  # the stride forgotten
        "dx[b, s] = sum(dout[b, (s - k) // 2] * w[k], k)",  # floor: reads where it must not
        "dx[b, s] = sum(dout[b, (s + k) / 2] * w[k], k)",  # the kernel flipped
    ],
)
def test_a_strided_dx_without_its_zeros_is_refuted(text):
    layer = conv(
        {"x": text},
        forward=("y[b, t] = sum(x[b, 2*t + k] * w[k], k)",),
        sizes={"L": "2*T"},
    )
    example = assert_refuted(verdict(layer, "x"))
    assert _numpy_conv_truth(example, 2, 0) == Fraction(str(example.truth))
    right = layer.with_claims({"x": "dx[b, s] = sum(dout[b, (s - k) / 2] * w[k], k)"})
    assert_proved(verdict(right, "x"), "B <= 1, T <= 4, K <= 3")


# ---------------------------------------------------------------- hostile: never PROVED
def test_a_read_that_leaves_the_range_is_zero_not_wrapped():
    """Python's x[-1] is the last element; a shifted read before 0 is zero. A claim that
    wraps around (as numpy's roll would) is refuted, the right one checked."""
    assert_proved(verdict(shift({"x": "dx[b, s] = dout[b, s + 1]"}), "x"), "B <= 1, T <= 5")
    wrapped = verdict(shift({"x": "dx[b, s] = dout[b, (s + 1) % T]"}), "x")
    example = assert_refuted(wrapped)
    assert {str(k): n for k, n in example.sizes.items()} == {"B": 1, "T": 1}
    assert example.truth == 0  # x[0, 0] is read by nothing at T = 1


def test_a_numpy_claim_that_ignores_the_shift_is_refuted():
    assert_refuted(verdict(shift({"x": "dout"}), "x"))


def test_a_claim_wrong_only_beyond_the_bound_is_checked_only_up_to_it():
    """An extra term that reads inside dout only from T = 5: right for T <= 4, wrong from
    T = 5. CHECKED says exactly where it holds; a bound that reaches T = 5 refutes it. Never
    PROVED either way."""
    text = "dx[b, s] = dout[b, s + 1] + dout[b, s + 4]"
    low = verdict(shift({"x": text}, check_sizes={"B": 1, "T": 4}), "x")
    assert_checked(low, "B <= 1, T <= 4")
    high = verdict(shift({"x": text}, check_sizes={"B": 1, "T": 5}), "x")
    example = assert_refuted(high)
    assert example.sizes[sp.Symbol("T", integer=True, positive=True)] == 5


def test_a_claim_right_only_where_sizes_coincide_is_refuted():
    """FlattenConsecutive's dx with T2 where C belongs: right only at T2 = C."""
    layer = load_layer(EXAMPLES / "flatten_consecutive.py")
    wrong = layer.with_claims(
        {"x": "dx[b, s, c] = sum(dout[b, s // 2, h] * W[(s % 2) * T2 + c, h], h)"}
    )
    example = assert_refuted(verdict(wrong, "x"))
    sizes = {str(k): n for k, n in example.sizes.items()}
    assert sizes["T2"] != sizes["C"]


def test_no_size_where_a_declared_size_is_below_1_is_checked():
    layer = conv({"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"}, sizes={"L": "T - K + 1"})
    for sizes in shifts.grid(layer):
        assert all(sp.sympify(s).xreplace(sizes) >= 1 for s in layer.all_sizes)
    assert len(shifts.grid(layer)) == 4 + 3 + 2  # (T, K) with T >= K, T <= 4, K <= 3
    # right (reads outside x are zero), but L can be below 1: CHECKED, never PROVED
    assert not shifts.sizes_at_least_one(layer)
    assert_checked(verdict(layer, "x"), "B <= 1, T <= 4, K <= 3")


def test_no_valid_size_at_all_is_not_checked():
    layer = conv(
        {"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"},
        sizes={"L": "T - K - 3"},
        check_sizes={"B": 1, "T": 4, "K": 3},
    )
    v = verdict(layer, "x")
    assert not v.checked and v.counterexample is None and not v.proof.ok
    assert "no sizes" in v.searched


def test_past_the_time_budget_the_claim_is_not_checked(monkeypatch):
    monkeypatch.setattr(shifts, "CHECK_SECONDS", 0.0)
    v = verdict(conv({"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"}), "x")
    assert not v.checked and not v.proof.ok and "time budget" in v.searched


def test_an_undecided_claim_exits_1_with_not_proved(monkeypatch):
    monkeypatch.setattr(shifts, "CHECK_SECONDS", 0.0)
    report = run_layer(conv({"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"}), None, "c")
    assert not report.ok
    assert report.text.splitlines()[-1].startswith("NOT PROVED: dx")


def test_a_transposed_numpy_claim_in_a_shifted_layer_is_refuted_by_shape():
    layer = load_layer(EXAMPLES / "conv1d.py").with_claims({"bias": "sum(dout, axis=(0, 2))"})
    report = run_layer(layer, None, "conv1d")
    assert not report.ok
    assert report.text.splitlines()[-1].startswith("REFUTED: dbias")


def test_the_in_range_factor_is_exact():
    t = sp.Symbol("t", integer=True)
    assert positions.InRange(t, 3).xreplace({t: 2}) == 1
    assert positions.InRange(t, 3).xreplace({t: 3}) == 0
    assert positions.InRange(t, 3).xreplace({t: -1}) == 0
    assert positions.InRange(t / 2, 3).xreplace({t: 3}) == 0  # 3/2: not a position
    assert positions.InRange(t / 2, 3).xreplace({t: 4}) == 1


# ---------------------------------------------------------------- statement errors: one line
@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"forward": ("y[b, t] = sum(x[b, t * k] * w[k], k)",)}, "multiply an index by a number"),
        ({"forward": ("y[b, t] = sum(x[b, t / k] * w[k], k)",)}, "divide by a positive integer"),
        ({"forward": ("y[b, t] = sum(x[b, t + 0.5] * w[k], k)",)}, "only integers"),
        ({"forward": ("y[b, t] = sum(x[b, 1] * w[k], k)",)}, "has no index"),
        ({"forward": ("y[b, t] = sum(x[b, K] * w[k], k)",)}, "is a size (an axis), not an index"),
        ({"shapes": {}}, "is read only shifted, so its range is not known"),
        ({"shapes": {"y": ("B",)}}, "shapes['y'] has 1 sizes, y has 2 indices"),
        ({"shapes": {"y": ("B", "T"), "z": ("B",)}}, "no forward line defines 'z'"),
        ({"sizes": {"L": "T / 2"}}, "a size is integers and axes"),
        ({"sizes": {"L": "Q + 1"}}, "a size is integers and axes"),
        ({"check_sizes": {"B": 9}}, "not an integer in 1..8"),
        ({"check_sizes": {"Z": 2}}, "is not an axis"),
        ({"forward": ("y[b, t] = x[b, t + k]",)}, "index k is not reduced"),
        ({"forward": ("y[b, t] = sum(x[b, t + k], k)",)}, "read only shifted"),
    ],
)
def test_statement_errors_are_one_line(change, words):
    with pytest.raises(LayerError) as err:
        conv({}, **change)
    message = str(err.value)
    assert "\n" not in message
    assert words in message, message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("dw[b, s] = dout[b, s]", "the left side must be dx[i0, i1]"),
        ("dx[b, s] = dout[b, s + k]", "index k is not reduced"),
        ("dx[b, s] = dout[b, t]", "index t is not reduced"),
    ],
)
def test_index_claim_errors_are_one_line(text, words):
    with pytest.raises(LayerError) as err:
        conv({"x": text})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_an_index_claim_needs_a_layer_with_shifted_reads():
    with pytest.raises(LayerError, match="write this one as numpy does"):
        Layer(
            name="lin",
            axes=("n", "D"),
            inputs={"x": ("n", "D")},
            forward=("y[i, j] = 2 * x[i, j]",),
            claims={"x": "dx[i, j] = 2 * dout[i, j]"},
        )


def test_labels_with_shifted_reads_are_refused():
    with pytest.raises(LayerError, match="labels with shifted reads"):
        conv({}, labels={"lab": (("B",), "K")})


# ------------------------------------------------------- sizes as expressions, kinks, budgets
def test_a_size_expression_alone_is_decided_by_the_exact_check_never_proved():
    """A linear layer on (B, 2*C): no shifted read, but a size the symbolic engine (every
    size a positive symbol) does not hold: CHECKED, and the wrong claim REFUTED."""
    layer = Layer(
        name="wide",
        axes=("B", "C", "H"),
        inputs={"x": ("B", "2*C"), "W": ("2*C", "H")},
        forward=("out[b, h] = sum(x[b, c] * W[c, h], c)",),
        claims={"x": "dout @ W.T", "W": "x.T @ dout"},
        check_sizes={"B": 2, "C": 2, "H": 2},
    )
    assert layer.exact_only and not layer.shifted
    report = run_layer(layer, None, "wide")
    assert report.ok and all(v.checked == "B <= 2, C <= 2, H <= 2" for v in report.verdicts)
    wrong = run_layer(layer.with_claims({"W": "(x.T @ dout) / 2"}), None, "wide")
    assert not wrong.ok and wrong.verdicts[1].counterexample is not None


def test_too_many_size_combinations_is_a_one_line_error():
    layer = load_layer(EXAMPLES / "conv1d.py")
    layer.check_sizes = {"B": 8, "T": 8, "K": 8, "C": 8, "H": 8}
    with pytest.raises(LayerError, match="32768 size combinations .* more than 5000"):
        check(layer, "w")


def relu_window(claim: str) -> Layer:
    return Layer(
        name="relu_window",
        axes=("B", "T", "K"),
        inputs={"x": ("B", "T"), "w": ("K",)},
        forward=("h[b, t] = sum(w[k] * x[b, t - k], k)", "out[b, t] = relu(h[b, t])"),
        shapes={"h": ("B", "T")},
        claims={"x": claim},
        check_sizes={"B": 1, "T": 3, "K": 2},
    )


def test_a_kink_after_a_shifted_read():
    right = "dx[b, s] = sum(dout[b, s + k] * (h[b, s + k] > 0) * w[k], k)"
    assert_checked(verdict(relu_window(right), "x"), "B <= 1, T <= 3, K <= 2")
    forgotten = "dx[b, s] = sum(dout[b, s + k] * w[k], k)"  # relu' forgotten
    assert_refuted(verdict(relu_window(forgotten), "x"))


def test_a_claim_that_differs_only_on_the_kink_is_not_proved_not_refuted():
    """(h >= 0) and (h > 0) differ only where h = 0, where relu has no derivative: the exact
    check cannot call that equal at every input, and no point off the kink refutes it."""
    v = verdict(relu_window("dx[b, s] = sum(dout[b, s + k] * (h[b, s + k] >= 0) * w[k], k)"), "x")
    assert not v.proof.ok and not v.checked and v.counterexample is None
    assert "no exact point shows it" in v.searched


@pytest.mark.parametrize("c", [1, 2, 3, -1, -2])
def test_summing_out_an_affine_delta_is_exact_at_every_integer_assignment(c):
    """sum_{d<n} δ(q, c*d + e) f[d] = InRange((q - e)/c, n) f[(q - e)/c], the rewrite the
    symbolic proof stands on, compared written out at every q, e, n in a range."""
    d, q, e = (sp.Symbol(x, integer=True) for x in "dqe")
    n = sp.Symbol("n", integer=True, positive=True)
    f = sp.IndexedBase("f")
    total = sp.Sum(sp.KroneckerDelta(q, c * d + e) * f[d], (d, 0, n - 1))
    summed = shifts.collapse_shifts(total)
    assert not summed.has(sp.Sum)
    for size in range(1, 5):
        for at_q in range(-3, 9):
            for at_e in range(-3, 4):
                point = {n: size, q: at_q, e: at_e}
                want = written_out(total.xreplace(point))
                assert summed.xreplace(point) == want, (point, summed)


def test_a_delta_that_is_not_affine_is_left_alone():
    d, q = (sp.Symbol(x, integer=True) for x in "dq")
    f = sp.IndexedBase("f")
    total = sp.Sum(sp.KroneckerDelta(q, sp.floor(d / 2) + d) * f[d], (d, 0, 5))
    assert shifts.collapse_shifts(total).has(sp.Sum)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("x", "dx[b, s] = sum(dout[b, (s + P + k) / 2] * w[k], k)"),  # the kernel flipped
        ("x", "dx[b, s] = sum(dout[b, s + P - k] * w[k], k)"),  # the stride forgotten
        ("x", "dx[b, s] = sum(dout[b, (s - k) / 2] * w[k], k)"),  # the padding dropped
        ("x", "dx[b, s] = sum(dout[b, (s + P - k) // 2] * w[k], k)"),  # floor for /
        ("w", "dw[k] = sum(dout[b, t] * x[b, 2*t + k], b, t)"),  # the padding dropped
        ("w", "dw[k] = sum(dout[b, t] * x[b, t + k - P], b, t)"),  # the stride forgotten
        ("w", "dw[k] = sum(dout[b, t] * x[b, 2*t - k + P], b, t)"),  # the kernel flipped
    ],
)
def test_a_wrong_claim_that_passes_a_tiny_check_is_never_proved(key, text):
    """With every bound 1, the exact check sees one element: the classic mistakes pass it
    (or fail it); the symbolic proof must not call any of them PROVED."""
    layer = conv(
        {key: text},
        forward=("y[b, t] = sum(x[b, 2*t + k - P] * w[k], k)",),
        constants={"P": 1},
        sizes={"L": "2*T"},
        check_sizes={"B": 1, "T": 1, "K": 1},
    )
    v = verdict(layer, key)
    assert not v.proof.ok, v
    assert_refuted(verdict(_wider(layer), key))  # and each is wrong: wider bounds refute it


def _wider(layer: Layer) -> Layer:
    wider = layer.with_claims(dict(layer.claim_text))
    wider.check_sizes = {"B": 1, "T": 3, "K": 3}
    return wider


def test_a_forward_too_large_to_write_out_stops_with_not_proved(monkeypatch):
    """The check counts a forward's terms from its sums' ranges before writing it out; past
    the cap (here lowered to 40, the right conv claim's forward passing it at the larger sizes)
    it stops and says so: NOT PROVED, never CHECKED on part of the bounds."""
    i, j = sp.Symbol("i"), sp.Symbol("j")
    assert shifts.terms(sp.Sum(sp.Sum(1, (i, 0, 9)), (j, 0, 9))) == 100
    assert shifts.terms(sp.Sum(sp.Sum(1, (i, 0, 9)), (j, 0, 9)), cap=50) == 51
    monkeypatch.setattr(shifts, "MAX_TERMS", 40)
    v = verdict(conv({"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"}), "x")
    assert not v.proof.ok and not v.checked and v.counterexample is None
    assert "passes 40 terms (give smaller check_sizes)" in v.searched


def test_a_position_needs_an_integer_constant():
    with pytest.raises(LayerError, match="P is not an integer"):
        conv({}, forward=("y[b, t] = sum(x[b, t + k - P] * w[k], k)",), constants={"P": 0.5})


def test_flatten_consecutive_reads_as_torchs_view():
    """The statement's flat[b, t, c] = x[b, 2*t + c // C, c % C] is x.reshape(B, T2, 2*C):
    every element of the line at concrete sizes names the element numpy's reshape puts there."""
    import numpy as np

    layer = load_layer(EXAMPLES / "flatten_consecutive.py")
    line = layer.names["flat"]
    for b_size, t2, c_size in [(1, 1, 1), (2, 2, 3), (1, 3, 2)]:
        sizes = {str(a): v for a, v in zip(layer.axes, (b_size, t2, c_size, 1), strict=True)}
        at = {a: sizes[str(a)] for a in layer.axes}
        x = np.arange(b_size * 2 * t2 * c_size).reshape(b_size, 2 * t2, c_size)
        view = x.reshape(b_size, t2, 2 * c_size)
        for index in np.ndindex(view.shape):
            element = line.rhs.xreplace({**at, **dict(zip(line.indices, index, strict=True))})
            (read,) = element.atoms(sp.Indexed)
            assert element == read  # in range: its InRange factor is 1
            assert x[tuple(int(i) for i in read.indices)] == view[index]


def test_past_the_proof_budget_a_checked_claim_stays_checked(monkeypatch):
    monkeypatch.setattr(shifts, "PROOF_SECONDS", -1.0)
    v = verdict(conv({"x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)"}), "x")
    assert_checked(v, "B <= 1, T <= 4, K <= 3")
