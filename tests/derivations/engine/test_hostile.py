"""Statements a hostile user would write: none may yield PROVED for a claim that is wrong at a
size the statement allows, and none may end in a traceback.

Each test states the layer in Python (one-axis or two-axis forwards: cheap to derive) and
asserts the verdict, the words that qualify it, or the one-line error naming the symbol.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from derivations.engine import derive
from derivations.engine.derive import check
from derivations.language.layer import Layer
from derivations.language.names import LayerError
from derivations.outputs.layer_report import run_layer

ROOT = Path(__file__).resolve().parents[3]


def _layer(**changes) -> Layer:
    statement = {
        "name": "t",
        "axes": ("n", "D"),
        "inputs": {"x": ("n", "D")},
        "forward": ("out[i, j] = x[i, j]",),
    }
    return Layer(**{**statement, **changes})


def _verdict(layer: Layer, key: str = "x"):
    return check(layer, key)


# ---------------------------------------------------------------- assumptions checked
def test_a_negative_constant_is_not_assumed_positive():
    """sqrt(c**2) is |c| = -c for c = -2: the claim c * dout (true only for c > 0) is refuted,
    and the kernel computes 2 * x as the statement's text does."""
    forward = ("out[i, j] = sqrt(c**2) * x[i, j]",)
    wrong = _layer(constants={"c": "-2"}, forward=forward, claims={"x": "c * dout"})
    verdict = _verdict(wrong)
    assert not verdict.proof.ok and verdict.counterexample is not None
    right = _layer(constants={"c": "-2"}, forward=forward, claims={"x": "-c * dout"})
    report = run_layer(right, None, "test")
    assert report.ok and "at c = -2" in report.text


def test_kernel_is_verified_against_the_statement_as_written(tmp_path):
    """The reference forward is the text re-read without sympy: a kernel whose forward came
    from a wrong reading (here: edited to -c * x, sqrt(c**2) read as c < 0 would not) is caught."""
    from derivations.outputs import kernel, verify

    layer = _layer(constants={"c": "-2"}, forward=("out[i, j] = sqrt(c**2) * x[i, j]",))
    report = run_layer(layer, tmp_path / "k.py", "test")
    text = (tmp_path / "k.py").read_text()
    assert "dx = -c * dout" in text
    (tmp_path / "bad.py").write_text(text.replace("dx = -c * dout", "dx = c * dout"))
    module = kernel.load_kernel(tmp_path / "bad.py", "bad")
    assert report.ok and not any(v.ok for v in verify.verify(layer, module))


def test_a_claim_that_is_zero_over_zero_at_small_n_says_where():
    """(n - 1)(n - 2) / ((n - 1)(n - 2)) simplifies to 1, but is 0/0 at n = 1, 2: PROVED
    names those sizes, and the kernel prints the derived gradient, defined at every n."""
    claim = "dout * (n**2 - 3*n + 2) / ((n - 1) * (n - 2))"
    layer = _layer(claims={"x": claim})
    verdict = _verdict(layer)
    assert verdict.proof.ok
    assert "the claim at n = 1, 2" in verdict.undefined
    report = run_layer(layer, None, "test")
    assert "except where undefined: the claim at n = 1, 2" in report.text
    assert report.ok and {v.sizes["n"] for v in report.verified} >= {1}


def test_bessel_forward_is_defined_from_n_2():
    """A forward dividing by n - 1 is undefined at n = 1: said, and verified from n = 2."""
    from derivations.outputs.verify import size_cases

    layer = Layer(
        "bessel",
        ("n",),
        {"x": ("n",)},
        ("mu = mean(x[i], i)", "var = sum((x[i] - mu)**2, i) / (n - 1)"),
        claims={"x": "2 * (x - mean(x)) / (n - 1)"},
    )
    verdict = _verdict(layer)
    assert verdict.proof.ok and "the forward at n = 1" in verdict.undefined
    assert min(case[layer.axes[0]] for case in size_cases(layer)) == 2


def test_undecided_within_the_budget_is_not_proved(monkeypatch):
    """With no time to search, a claim simplify does not prove is NOT PROVED, never PROVED."""
    monkeypatch.setattr(derive, "SEARCH_SECONDS", -1.0)
    layer = _layer(claims={"x": "2 * dout"})
    report = run_layer(layer, None, "test")
    assert "NOT PROVED" in report.text and "PROVED for" not in report.text
    assert "time budget" in report.text and not report.ok


# ---------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inputs": {"lambda": ("n", "D")}}, "input name 'lambda' is reserved"),
        ({"inputs": {"jnp": ("n", "D")}}, "input name 'jnp' is reserved"),
        ({"upstream": "x"}, "upstream name 'x' is already the name of input x"),
        ({"forward": ("dx[i, j] = x[i, j]",)}, "gradient's name 'dx' is already"),
        ({"forward": ("jax[i, j] = x[i, j]",)}, "intermediate name 'jax' is reserved"),
        ({"axes": ("n", "n")}, "axis name 'n' is already"),
        ({"name": "class"}, "layer name 'class' is reserved"),
        ({"constants": {"x": "1"}}, "input name 'x' is already the name of constant x"),
    ],
)
def test_names_that_collide_are_one_line_errors(changes, message):
    with pytest.raises(LayerError) as err:
        _layer(**changes)
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"constants": {"c": "abc"}}, "constant c: 'abc' is not a number"),
        ({"constants": {"c": "n"}}, "constant c: 'n' is not a number"),
        ({"constants": {"c": [1]}}, "constant c: [1] is not a number"),
        ({"constants": {"c": "10**400"}}, "does not fit a float64"),
        ({"forward": ("out[i, j] = x[i, j]**(2**100)",)}, "is beyond 64"),
        ({"forward": ("out[i, j] = x[i, j] * 10**400",)}, "does not fit a float64"),
    ],
)
def test_numbers_the_engine_cannot_hold_are_one_line_errors(changes, message):
    with pytest.raises(LayerError) as err:
        _layer(**changes)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_big_integers_print_as_floats_and_verify(tmp_path):
    """2**100 and 10**20 exceed int64: the kernel must not hand jax a Python int it cannot
    hold, and the verification of the big-scaled gradient still holds (in float64: a gradient
    of 1.3e50 is inf in float32, reported as unsafe at every magnitude)."""
    layer = _layer(forward=("a[i, j] = x[i, j] * 2**100", "out[i, j] = a[i, j] * 10**20"))
    report = run_layer(layer, tmp_path / "k.py", "test", allow_unsafe=True)
    assert report.problem is None and report.ok, report.text
    assert "dx for |x| >= 0.001: non-finite in float32" in report.verdict
    assert "1.2676506002282294e+30" in (tmp_path / "k.py").read_text()


# ---------------------------------------------------------------- sizes and shapes
def test_an_exponentially_growing_chain_stops_with_one_line(monkeypatch):
    """Each line uses the last twice: 2**k nodes. The budget stops it with one line (a smaller
    budget here, so the test is quick; the mechanism is the same)."""
    monkeypatch.setattr(derive, "MAX_OPS", 2000)
    lines = ["a0[i, j] = x[i, j]"]
    lines += [f"a{k}[i, j] = a{k - 1}[i, j] * exp(a{k - 1}[i, j])" for k in range(1, 30)]
    lines.append("out[i, j] = a29[i, j]")
    layer = _layer(forward=tuple(lines))
    with pytest.raises(LayerError, match="passes 2000 nodes") as err:
        check(layer, "x")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (  # an axis used with two sizes
            {"inputs": {"x": ("n", "D"), "g": ("n",)}, "forward": ("out[i, j] = g[j] * x[i, j]",)},
            "index j runs over",
        ),
        (  # a contraction index left free
            {
                "inputs": {"x": ("n", "D"), "W": ("D", "D")},
                "forward": ("out[i, k] = x[i, j] * W[j, k]",),
            },
            "index j is not reduced",
        ),
        (  # a mask differentiated
            {
                "inputs": {"x": ("n", "D"), "M": ("n", "D")},
                "fixed": ("M",),
                "forward": ("out[i, j] = x[i, j] * M[i, j]",),
                "claims": {"M": "dout * x"},
            },
            "claim for 'M': M is fixed",
        ),
        (  # einsum letters against the shapes
            {
                "inputs": {"x": ("n", "D"), "W": ("D", "D")},
                "forward": ("out[i, k] = sum(x[i, j] * W[j, k], j)",),
                "claims": {"x": "einsum('abc,cb->ab', dout, W)"},
            },
            "einsum: letters 'abc' disagree with dout's shape (n, D)",
        ),
    ],
)
def test_wrong_statements_at_higher_rank_name_the_symbol(changes, message):
    with pytest.raises(LayerError) as err:
        _layer(**changes)
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- the CLI
def _main(capsys, *args: str) -> tuple[int, str]:
    """The CLI in process (jaxninja._cli.main): its status and its stderr."""
    from jaxninja._cli import main

    status = main(list(args))
    return status, capsys.readouterr().err


def test_out_naming_the_layer_file_itself_is_refused(tmp_path, capsys):
    path = tmp_path / "layer.py"
    text = (ROOT / "examples" / "linear.py").read_text()
    path.write_text(text)
    status, err = _main(capsys, "derive", "--layer", str(path), "--out", str(path))
    assert status == 2 and err.count("\n") == 1
    assert "that is the layer file itself" in err and "Traceback" not in err
    assert path.read_text() == text  # untouched


def test_a_layer_file_that_raises_anything_is_one_line(tmp_path, capsys):
    path = tmp_path / "layer.py"
    path.write_text("import sys\nsys.exit(3)\n")
    status, err = _main(capsys, "derive", "--layer", str(path))
    assert status == 2 and err.count("\n") == 1
    assert "SystemExit" in err and "Traceback" not in err


def test_a_malformed_statement_through_a_subprocess_is_one_line(tmp_path):
    """One real process: no traceback reaches stderr (the in-process tests above see main's
    return only)."""
    path = tmp_path / "layer.py"
    path.write_text(
        'from derivations import Layer\nlayer = Layer("t", ("n",), {"lambda": ("n",)}, ())\n'
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-m", "jaxninja", "derive", "--layer", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "input name 'lambda' is reserved" in done.stderr and "Traceback" not in done.stderr


def test_merging_sums_never_captures_a_shared_dummy():
    """Two sums of one term may share a dummy (the product rule on S**2 gives S * S'):
    merging them into one sum must keep them independent. Checked by writing both forms
    out at a concrete size with exact values."""
    import random

    import sympy as sp

    from derivations.engine.derive import merged_sums
    from derivations.engine.exact import written_out

    k, l = (sp.Dummy(name, integer=True, nonnegative=True) for name in "kl")
    n = sp.Symbol("n", integer=True, positive=True)
    a, b, x = (sp.IndexedBase(name) for name in "abx")
    first, second = sp.Sum(a[l], (l, 0, n - 1)), sp.Sum(b[l] ** 2, (l, 0, n - 1))
    expr = sp.Sum(x[k] * first * second, (k, 0, n - 1))
    merged = merged_sums(expr)
    rng = random.Random(0)
    values = {
        base[i]: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5))
        for base in (a, b, x)
        for i in range(3)
    }
    assert written_out(merged.xreplace({n: 3})).xreplace(values) == written_out(
        expr.xreplace({n: 3})
    ).xreplace(values)


def test_a_correct_cancelling_layer_is_not_flagged_over_the_bound(tmp_path, x64):
    """x / |x| has gradient 0 at n = 1, computed as rinv * dout - x**2 * rinv**3 * dout:
    rounding of two equal terms. Measured against max |gradient| alone that is far beyond
    the bound; against the printed form's own terms (the tool's scale) it is within it."""
    import numpy as np

    from derivations.outputs import kernel, verify

    layer = Layer(
        "unit",
        ("n",),
        {"x": ("n",)},
        ("rinv = sum(x[i]**2, i)**(-1/2)", "out[i] = x[i] * rinv"),
    )
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.ok and "OVER THE BOUND" not in report.text, report.text
    assert min(v.sizes["n"] for v in report.verified) == 1
    # the same comparison at n = 1 with max |gradient| as the only scale would flag it
    module = kernel.load_kernel(tmp_path / "k.py", "unit")
    rounded = []
    for value in (0.7, 0.3, 1.1, 2.9, 0.123, 5.3):
        x, dout = np.array([value]), np.array([1.3])
        got = np.asarray(module.unit_backward(dout, x))
        if got[0] != 0:  # this point leaves a rounding residue
            rounded.append((got, np.asarray(module.unit_magnitudes(dout, x))))
    assert rounded, "no test point leaves a rounding residue"
    exact = np.zeros(1)  # the true gradient at n = 1
    for got, terms in rounded:
        fitted = verify._errors(layer, [exact], [got], [terms])["dx"]
        strict = verify._errors(layer, [exact], [got], [np.full(1, 1e-300)])["dx"]
        assert fitted <= verify.BOUND < strict


def test_kinks_follow_jax_and_a_relu_claim_is_proved(tmp_path, x64):
    """relu, abs and maximum: the derived kernel at the kink (x = 0, y = 0, a tie) equals
    jax.grad there, and dout * (x > 0) is proved for relu."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from derivations.outputs import kernel

    layer = Layer(
        "kinks",
        ("n", "D"),
        {"x": ("n", "D"), "y": ("n", "D")},
        ("out[i, j] = relu(x[i, j]) + abs(y[i, j]) + maximum(x[i, j], y[i, j])",),
    )
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.ok, report.text
    module = kernel.load_kernel(tmp_path / "k.py", "kinks")
    x, y = jnp.array([[0.0, 1.0, -1.0, 0.5]]), jnp.array([[0.0, 2.0, -1.0, 0.5]])
    ones = jnp.ones_like(x)
    got = module.kinks_backward(ones, x, y)

    def total(a, b):
        return jnp.sum(jax.nn.relu(a) + jnp.abs(b) + jnp.maximum(a, b))

    want = jax.grad(total, argnums=(0, 1))(x, y)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)  # exact: 0, 1/2 and 1 are exact in float64
    relu = Layer(
        "r", ("n",), {"x": ("n",)}, ("out[i] = relu(x[i])",), claims={"x": "dout * (x > 0)"}
    )
    assert check(relu, "x").proof.ok


@pytest.mark.parametrize(
    ("forward", "claim", "message"),
    [
        ("out[i] = " + "-" * 3000 + "x[i]", None, "not an expression: nested too deeply"),
        ("out[i] = tanh(x[i])", "-" * 3000 + "dout", "not an expression: nested too deeply"),
        ("out[i] = x[i]\x00", None, "not an expression: source code"),
        ("out[i] = tanh(x[i])", "dout\x00", "not an expression: source code"),
        ("out[i] = x[i] + x[+i]", None, "position '+i': not an index expression"),
    ],
)
def test_text_python_cannot_parse_is_one_line_from_python_too(forward, claim, message):
    """A nesting too deep for Python's parser (it raised RecursionError out of Layer(...)) or a
    null byte is a LayerError naming the line, as every other statement mistake is."""
    with pytest.raises(LayerError) as caught:
        Layer("t", ("n",), {"x": ("n",)}, (forward,), claims={"x": claim} if claim else None)
    assert message in str(caught.value) and "\n" not in str(caught.value)
