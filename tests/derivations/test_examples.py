"""Check your own derivation: the worked examples in examples/ end to end.

Each example's right claim is proved and its wrong claim refuted, with a counterexample
re-evaluated here exactly by a different route (``Sum.doit()`` on the concrete forward, not
the checker's own expansion); each generated kernel matches ``jax.vjp`` of a forward written
here by hand in float64 within 8 eps·scale (scale: max |gradient|) at n in {3, 8, 64}; a
malformed statement is one ``jaxninja: error:`` line with exit status 2, never a traceback.

Default run: the five right examples end to end once (module fixture), the five refutations,
three malformed statements through the CLI. Slow: every example file through the CLI, timed.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivations.engine.derive import check
from derivations.engine.proofs import opaque_sums
from derivations.language.layer import Layer, load_layer
from derivations.language.names import LayerError
from derivations.outputs.kernel import load_kernel
from derivations.outputs.layer_report import run_layer
from jaxninja import numerics
from tests.derivations.exact_at import exact_claim, exact_truth
from tests.helpers import run_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = (
    "rmsnorm",
    "layernorm",
    "batchnorm_biased",
    "softmax_temperature",
    "cross_entropy_smoothing",
)
EPS_VALUE = 1e-5
BOUND = numerics.KERNEL  # eps·scale: the contract for a derived kernel vs jax.vjp


# ---------------------------------------------------------------- forwards written by hand
def _rmsnorm(x, g, eps=EPS_VALUE):
    return g * x / jnp.sqrt(jnp.mean(x**2, axis=1, keepdims=True) + eps)


def _layernorm(x, g, b, eps=EPS_VALUE):
    xc = x - x.mean(axis=1, keepdims=True)
    return g * xc / jnp.sqrt(jnp.mean(xc**2, axis=1, keepdims=True) + eps) + b


def _batchnorm_biased(h, gain, bias, eps=EPS_VALUE):
    hc = h - h.mean(axis=0, keepdims=True)
    return gain * hc / jnp.sqrt(jnp.mean(hc**2, axis=0, keepdims=True) + eps) + bias


def _softmax_temperature(logits, temperature=2.0):
    return jax.nn.softmax(logits / temperature, axis=1)


def _cross_entropy_smoothing(logits, y, alpha=0.1):
    classes = logits.shape[1]
    target = (1 - alpha) * jax.nn.one_hot(y, classes, dtype=logits.dtype) + alpha / classes
    return -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits, axis=1), axis=1))


HAND = {
    "rmsnorm": _rmsnorm,
    "layernorm": _layernorm,
    "batchnorm_biased": _batchnorm_biased,
    "softmax_temperature": _softmax_temperature,
    "cross_entropy_smoothing": _cross_entropy_smoothing,
}


@pytest.fixture(scope="module")
def right_reports(tmp_path_factory):
    """Each right example run end to end once, its kernel written to a temporary file: the
    kernel prints the proved claims."""
    out = tmp_path_factory.mktemp("kernels")
    reports = {}
    for name in NAMES:
        layer = load_layer(EXAMPLES / f"{name}.py")
        reports[name] = run_layer(layer, out / f"{name}_kernel.py", f"examples/{name}.py")
    return reports


@pytest.fixture(scope="module")
def derived_reports(tmp_path_factory):
    """Each example without its claims: the kernel prints every derived gradient (the form a
    refuted claim's kernel gets)."""
    out = tmp_path_factory.mktemp("derived")
    reports = {}
    for name in NAMES:
        layer = load_layer(EXAMPLES / f"{name}.py").without_claims()
        # verify=False: the tests below check these kernels against hand-written forwards
        path = out / f"{name}_kernel.py"
        reports[name] = run_layer(layer, path, f"examples/{name}.py", verify=False)
        path.write_text(reports[name].kernel_text)  # run_layer writes only a verified kernel
    return reports


# ---------------------------------------------------------------- proofs and refutations
@pytest.mark.parametrize("name", NAMES)
def test_right_claims_are_proved(name, right_reports):
    report = right_reports[name]
    assert report.layer.claim_text, "every example states its claims"
    for verdict in report.verdicts:
        assert verdict.proof is not None and verdict.proof.ok, (name, verdict.key)
        assert verdict.counterexample is None
    assert report.ok
    assert "PROVED for every size" in report.text and "== time:" in report.text


@pytest.mark.parametrize("name", NAMES)
def test_wrong_claim_is_refuted_with_a_real_counterexample(name):
    layer = load_layer(EXAMPLES / f"{name}_wrong.py")
    verdicts = [check(layer, key) for key in layer.claim_text]
    refuted = [v for v in verdicts if not v.proof.ok]
    assert refuted, f"{name}_wrong: no claim refuted"
    for verdict in refuted:
        assert verdict.difference is not None and sp.simplify(opaque_sums(verdict.difference)) != 0
        example = verdict.counterexample
        assert example is not None, (name, verdict.key)
        truth = exact_truth(layer, example)
        claim = exact_claim(layer, verdict.key, example)
        assert sp.simplify(truth - example.truth) == 0  # the reported values are the exact ones
        assert sp.simplify(claim - example.claim) == 0
        assert sp.simplify(truth - claim) != 0  # and they really differ
        # the smallest sizes: the batch is 1 unless the claim is undefined there
        assert example.sizes[layer.axes[0]] == (2 if example.skipped else 1)


def test_refuting_the_lecture_formula_on_a_biased_forward_needs_n_2():
    """The lecture's Bessel-corrected BatchNorm gradient on a biased-variance forward: at n = 1
    it divides by zero (skipped), at n = 2 it differs: the smallest counterexample is n = 2."""
    layer = load_layer(EXAMPLES / "batchnorm_biased_wrong.py")
    example = check(layer, "hprebn").counterexample
    assert example.sizes[layer.axes[0]] == 2 and example.skipped


# ---------------------------------------------------------------- kernels vs jax.vjp
def _inputs(name: str, n: int, rng: np.random.Generator) -> tuple[list, list]:
    features = 16
    x = rng.normal(size=(n, features))
    vec = lambda: rng.normal(size=features)  # noqa: E731
    return {
        "rmsnorm": ([x, vec()], []),
        "layernorm": ([x, vec(), vec()], []),
        "batchnorm_biased": ([x, vec(), vec()], []),
        "softmax_temperature": ([x], []),
        "cross_entropy_smoothing": ([x], [rng.integers(0, features, size=n)]),
    }[name]


@pytest.mark.parametrize("printed", ["claims", "derived"])
@pytest.mark.parametrize("name", NAMES)
def test_kernel_matches_vjp_of_a_hand_written_forward(name, printed, request, x64):
    report = request.getfixturevalue(f"{'right' if printed == 'claims' else 'derived'}_reports")[
        name
    ]
    source = report.out.read_text()  # derived: written by the fixture
    assert ("# d" in source) and ("your claim, proved" in source) == (printed == "claims")
    module = load_kernel(report.out, f"test_{name}")
    forward, backward = (getattr(module, f"{name}_{part}") for part in ("forward", "backward"))
    eps = np.finfo(np.float64).eps
    for n in (3, 8, 64):
        rng = np.random.default_rng(100 + n)
        floats, labels = _inputs(name, n, rng)
        out, pullback = jax.vjp(lambda *xs, lb=labels: HAND[name](*xs, *lb), *floats)
        # the generated forward is the stated one (to rounding: same operations, other order)
        np.testing.assert_allclose(forward(*floats, *labels), out, rtol=1e-12, atol=1e-12)
        cotangent = rng.normal(size=out.shape) if out.shape else 1.0
        reference = pullback(cotangent)
        upstream = [] if report.layer.is_loss else [cotangent]
        kernel = backward(*upstream, *floats, *labels)
        kernel = kernel if isinstance(kernel, tuple) else (kernel,)
        for key, ref, got in zip(report.layer.inputs, reference, kernel, strict=True):
            assert got.shape == ref.shape and got.dtype == jnp.float64
            scale = float(jnp.max(jnp.abs(ref)))
            error = float(jnp.max(jnp.abs(got - ref))) / (eps * scale)
            assert error <= BOUND, f"{name}: d{key} at n={n}: {error:.2f} eps·scale"
    if printed == "claims":  # the tool's own verification said the same
        assert all(v.ok for v in report.verified)
        batch = str(report.layer.axes[0])
        assert {v.sizes[batch] for v in report.verified} == {1, 5, 7}  # smallest, odd, larger


def test_verification_leaves_float32_the_default(right_reports):
    assert not jax.config.jax_enable_x64
    assert jnp.ones(2).dtype == jnp.float32


# ---------------------------------------------------------------- malformed statements
HEAD = (
    "from derivations import Layer\n"
    'layer = Layer(name="t", axes=("n", "D"), inputs={"x": ("n", "D"), "g": ("D",)},\n'
)
BAD = {
    "unknown symbol": (
        '    forward=("ms[i] = mean(xx[i, j]**2, j)",))\n',
        "unknown array 'xx'",
    ),
    "shape mismatch": (
        '    forward=("out[i, j] = g[i] * x[i, j]",))\n',
        "shape mismatch: index i runs over D in g[i] and over n in x[i, j]",
    ),
    "missing axis": (
        '    forward=("out[i, j] = g[j] * x[i, j]",), claims={"g": "sum(dout * x, axis=2)"})\n',
        "axis 2 does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_statement_is_one_line_through_the_cli(case, tmp_path):
    body, message = BAD[case]
    path = tmp_path / "bad.py"
    path.write_text(HEAD + body)
    done = run_command("derive", "--layer", str(path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("jaxninja: error: ")
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("forward", "claims", "message"),
    [
        (("ms[i] = x[i, j]**2",), {}, "index j is not reduced"),
        (("out[i, j] = g[j] * x[i, j]",), {"g": "sum(dout * xhat, axis=0)"}, "'xhat'"),
        (("out[i, j] = g[j] * x[i]",), {}, "x has shape (n, D), indexed with 1"),
        (("out[i, j] = g[j] * x[i, j]",), {"w": "dout"}, "claim for 'w'"),
        (("out[i, j] = g[j] * y[i, j]",), {}, "unknown array 'y'"),
        (("out[i, j] = g[j] * x[i, j] +",), {}, "not an expression"),
    ],
)
def test_statement_errors_name_the_symbol(forward, claims, message):
    with pytest.raises(LayerError) as err:
        Layer("t", ("n", "D"), {"x": ("n", "D"), "g": ("D",)}, forward, claims=claims)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_axis_in_an_input_shape():
    with pytest.raises(LayerError, match="input x: axis 'E' does not exist"):
        Layer("t", ("n", "D"), {"x": ("n", "E")}, ("out[i, j] = x[i, j]",))


def test_file_errors(tmp_path):
    (tmp_path / "syntax.py").write_text("layer = Layer(\n")
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(LayerError, match="syntax error"):
        load_layer(tmp_path / "syntax.py")
    with pytest.raises(LayerError, match="defines no 'layer = Layer"):
        load_layer(tmp_path / "none.py")
    with pytest.raises(LayerError, match="no such file"):
        load_layer(tmp_path / "missing.py")


def test_cli_out_needs_layer(capsys):
    from jaxninja._cli import main

    assert main(["derive", "--out", "k.py"]) == 2
    assert "--out needs --layer" in capsys.readouterr().err


# ---------------------------------------------------------------- every file through the CLI
@pytest.mark.slow
@pytest.mark.parametrize("name", [n + suffix for n in NAMES for suffix in ("", "_wrong")])
def test_cli_end_to_end_prints_the_time_of_each_step(name, tmp_path):
    """Every example through the real command: its verdict, its kernel, and the time of each
    step printed (how long they take is measured by ``benchmarks/derive_examples.py``, side by
    side, not asserted here: two test workers on two cores inflate even CPU time)."""
    out = tmp_path / "kernel.py"
    done = run_command("derive", "--layer", f"examples/{name}.py", "--out", str(out))
    wrong = name.endswith("_wrong")
    assert done.returncode == (1 if wrong else 0), done.stdout + done.stderr
    assert ("REFUTED" in done.stdout) == wrong
    assert ("counterexample at the smallest sizes" in done.stdout) == wrong
    if wrong:  # a refuted claim: no kernel is printed, verified or written
        assert not out.exists() and "kernel not written" in done.stdout
    else:
        assert out.is_file() and "OVER THE BOUND" not in done.stdout and ", verify " in done.stdout
    assert "(derive + prove/refute " in done.stdout
    assert re.search(r"total, imports included: [\d.]+ s wall, [\d.]+ s CPU", done.stdout)


def test_without_claims_the_derived_gradient_is_generated_and_verified(tmp_path):
    """No claim: the kernel prints the derived gradient itself (tanh: (1 - h**2) * dh)."""
    layer = Layer(
        "act", ("n", "H"), {"hpreact": ("n", "H")}, ("h[i, j] = tanh(hpreact[i, j])",), "dh"
    )
    report = run_layer(layer, tmp_path / "act.py", "test")
    assert report.ok and report.verdicts[0].proof is None
    assert "dhpreact: the derived gradient" in (tmp_path / "act.py").read_text()
    free = layer.free(layer.axes)  # (p, q)
    expected = (1 - sp.tanh(layer.arrays["hpreact"][free]) ** 2) * layer.upstream[free]
    assert sp.simplify(report.verdicts[0].derived - expected) == 0


def test_a_max_shift_in_a_layer_file_is_proved_exact_and_kernel_verified(tmp_path):
    """``m[i] = max(x[i, j], j)`` is the max trick: the engine proves the loss does not depend
    on the shift, derives the rest, and the kernel (with jnp.max) matches jax.vjp of the
    forward as written, whose max jax differentiates through its argmax."""
    layer = Layer(
        name="shifted_ce",
        axes=("n", "V"),
        inputs={"logits": ("n", "V")},
        labels={"y": (("n",), "V")},
        forward=(
            "top[i] = max(logits[i, j], j)",
            "counts[i, j] = exp(logits[i, j] - top[i])",
            "probs[i, j] = counts[i, j] / sum(counts[i, k], k)",
            "loss = -mean(sum(one_hot(y[i], j) * log(probs[i, j]), j), i)",
        ),
        claims={"logits": "(probs - one_hot(y)) / n"},
    )
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.ok, report.text
    assert "jnp.max(logits, axis=1)" in (tmp_path / "k.py").read_text()


def _picked_ce(claim: str | None) -> Layer:
    """Cross-entropy from the target's count, picked with a one-hot sum (claim None: none)."""
    return Layer(
        name="ce_picked",
        axes=("n", "V"),
        inputs={"logits": ("n", "V")},
        labels={"y": (("n",), "V")},
        forward=(
            "counts[i, j] = exp(logits[i, j])",
            "picked[i] = sum(one_hot(y[i], j) * counts[i, j], j)",
            "counts_sum[i] = sum(counts[i, j], j)",
            "loss = -mean(log(picked[i] / counts_sum[i]), i)",
        ),
        claims={"logits": claim} if claim else {},
    )


def test_an_index_a_delta_pins_is_read_at_its_value(tmp_path):
    """The derivative of this cross-entropy holds δ(q, y[p])·exp(logits[p, q]) beside
    exp(-logits[p, y[p]]); with q read as y[p] where the delta pins it, the right claim is
    PROVED (simplify alone left it NOT PROVED) and its kernel matches jax.vjp and torch, while a
    claim that is wrong where q = y[p] is still REFUTED with a counterexample. Without a claim,
    the derived gradient's logits[p, y[p]] is printed (and shown) as logits[p, q] beside the
    delta (it had no array form), and that kernel matches too."""
    # exp without the max shift: unsafe in float32 past 88 (reported; allowed here, where the
    # delta is the point)
    claim = "(counts / counts_sum[:, None] - one_hot(y)) / n"
    report = run_layer(_picked_ce(claim), tmp_path / "k.py", "t", allow_unsafe=True)
    assert report.ok and report.verdicts[0].proof.ok, report.text
    wrong = _picked_ce(
        "(counts / counts_sum[:, None] - one_hot(y) * counts / counts_sum[:, None]) / n"
    )
    verdict = check(wrong, "logits")
    assert not verdict.proof.ok and verdict.counterexample is not None
    report = run_layer(_picked_ce(None), tmp_path / "derived.py", "t", allow_unsafe=True)
    assert report.ok, report.text
    assert "derived: dlogits = " in report.text and "logits[p, y[p]]" not in report.text
    assert "dlogits: the derived gradient" in (tmp_path / "derived.py").read_text()
