"""``jaxninja backward --fuse A:B``: the lecture's ``logits:loss`` gives Exercise 2's dlogits and
``hprebn:hpreact`` Exercise 3's dhprebn (within the contract, not bit-exact: the closed forms
add in another order than the generated kernels), the fused backward passes the check table
without the segments' inner rows, a bad segment is one line, and a closed form the engine does
not prove is refused, never printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxninja import numerics
from jaxninja._cli import main
from jaxninja.backward import fuse, generate_source
from jaxninja.backward.collect import lecture
from jaxninja.backward.write import checked_backward, compile_backward
from jaxninja.errors import BackwardError
from jaxninja.gradcheck.compare import compare
from jaxninja.lecture import generated

ROOT = Path(__file__).resolve().parents[2]
LAYERNORM = ROOT / "examples" / "models" / "layernorm_mlp.py"
WAVENET = ROOT / "examples" / "models" / "wavenet.py"
BOTH = ["logits:loss", "hprebn:hpreact"]
BN_INNER = ["bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw"]
CE_INNER = ["logit_maxes", "norm_logits", "counts", "counts_sum", "counts_sum_inv", "probs"]


@pytest.fixture(scope="module")
def lecture_model(names_txt):
    return lecture()


@pytest.fixture(scope="module")
def fused_source(lecture_model):
    return generate_source(lecture_model, fuse=BOTH)


@pytest.fixture(scope="module")
def run(lecture_model, fused_source):
    """The fused backward on the lecture's float32 batch: (params, batch, acts, grads)."""
    key_init, key_batch = jax.random.split(jax.random.key(42))
    params, batch = lecture_model.init(key_init), lecture_model.batch(key_batch)
    acts: dict = {}

    def tap(name, x):
        acts[name] = x
        return x

    lecture_model.forward(params, batch, tap)
    grads = compile_backward(fused_source.code)(params, batch, acts)
    return params, batch, acts, grads


def _within(name: str, got, want):
    """Within the model contract (32 eps·scale against a reference, the table's jax bound)."""
    row = compare(name, np.asarray(got), np.asarray(want), "exercise", bound=numerics.MODEL_JAX)
    assert row.ok, (name, row.eps_scale)
    return row


def test_logits_loss_is_exercise_2(run, fused_source):
    """``--fuse logits:loss`` prints the lecture's ``(probs - one_hot(y)) / n`` as the engine
    derives it, and its dlogits is Exercise 2's kernel's within the contract (not the same
    bits by construction: ``counts * (1 / counts_sum)`` against ``counts / counts_sum``)."""
    params, (x, y), acts, grads = run
    assert "def fused_logits_loss(logits: jax.Array, y: jax.Array):" in fused_source.code
    assert "jax.nn.one_hot(y, " in fused_source.code
    _within("logits", grads["logits"], generated.cross_entropy_backward(acts["logits"], y))


def test_hprebn_hpreact_is_exercise_3(run, fused_source):
    """``--fuse hprebn:hpreact`` gives Exercise 3's (dhprebn, dbngain, dbnbias) from the same
    dhpreact, within the contract; Bessel's ``n - 1`` and ``eps`` appear by name."""
    params, _, acts, grads = run
    want = generated.batchnorm_backward(
        grads["hpreact"], acts["bnraw"], acts["bnvar_inv"], params.bngain
    )
    names = ("hprebn", "bngain", "bnbias")
    rows = {n: _within(n, grads[n], w) for n, w in zip(names, want, strict=True)}
    # dbnbias is the same reduction in both (sum(dhpreact, axis=0)): the same bits. dbngain
    # (bnvar_inv * sum(bndiff * dhpreact) against sum(bnraw * dhpreact)) and dhprebn round
    # in another order: within the contract only
    assert rows["bnbias"].exact
    assert "/ (n - 1)" in fused_source.code and "eps: float = 1e-05" in fused_source.code


def test_fused_backward_passes_the_check_table(lecture_model):
    """The inner taps of both segments are not rows; the 13 left are within contract."""
    checked = checked_backward(lecture_model, fuse=BOTH, against=("jax",))
    names = [r.name for r in checked.check.rows]
    assert checked.check.ok and len(names) == 26 - len(BN_INNER) - len(CE_INNER) - 1
    assert not set(names) & {*BN_INNER, *CE_INNER, "logprobs"}
    assert sorted(checked.source.untapped) == sorted([*BN_INNER, *CE_INNER, "logprobs"])
    assert len(checked.source.fused) == 2 and all("PROVED" in f for f in checked.source.fused)


def test_other_sizes_are_refused(run, fused_source):
    """The segment's ``1/32`` is stated as ``1/n``: true at the traced n only, so the fused
    function refuses other shapes instead of computing another layer's gradient."""
    from jaxninja.backward.write import NAMESPACE_IMPORTS

    namespace: dict = {}
    exec(NAMESPACE_IMPORTS + fused_source.code, namespace)
    _, (x, y), acts, _ = run
    with pytest.raises(ValueError, match="fused for the shapes"):
        namespace["fused_logits_loss"](acts["logits"][:5], y[:5])


def test_deterministic(lecture_model, fused_source):
    again = generate_source(lecture_model, fuse=BOTH)
    assert again.code == fused_source.code


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("logits", "give two tap names"),
        ("nosuch:h", "'nosuch' is not a tap"),
        ("h:hprelnorm", "hprelnorm is not computed from h"),
        ("embcat:lnmean", "hprelnorm is used outside the segment"),
        ("hprelnorm:hprelnorm", "the same value"),
    ],
)
def test_bad_segment_is_one_line(spec, needle, capsys):
    assert main(["backward", "--model", str(LAYERNORM), "--fuse", spec]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and f"--fuse {spec}" in err[0], err
    assert captured.out == ""


def test_a_form_not_proved_is_refused(lecture_model, monkeypatch):
    """A printed form that is not the derivative (doubled here) is REFUTED by the engine when
    restated as a claim: the generator refuses in one line, nothing is printed."""
    right = fuse._claim_text
    monkeypatch.setattr(fuse, "_claim_text", lambda node: f"2 * ({right(node)})")
    with pytest.raises(BackwardError) as err:
        generate_source(lecture_model, fuse=["logits:loss"])
    message = str(err.value)
    assert "\n" not in message
    assert "--fuse logits:loss: dlogits is REFUTED" in message and "not printed" in message


def test_sympy_only_with_fuse(names_txt):
    """``jaxninja backward`` imports no sympy; ``--fuse`` does (the engine)."""
    code = (
        "import sys\n"
        "from jaxninja.backward import generate_source\n"
        "from jaxninja.backward.collect import lecture\n"
        "m = lecture()\n"
        "generate_source(m)\n"
        "print('sympy' in sys.modules)\n"
        "generate_source(m, fuse=['logits:loss'])\n"
        "print('sympy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["False", "True"]


@pytest.mark.slow
def test_wavenet_3d_batchnorm_out_file(tmp_path, names_txt, capsys):
    """Part 5's BatchNorm over (0, 1): ``1/(n*D)`` and ``1/(n*D - 1)`` by name, the written
    file a model file whose check table has no inner rows and is within contract."""
    from jaxninja.gradcheck.model_check import cross_check_model

    out = tmp_path / "wavenet_fused.py"
    argv = ["backward", "--model", str(WAVENET), "--fuse", "l1.hprebn:l1.hpreact"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "fused l1.hprebn:l1.hpreact" in capsys.readouterr().out
    text = out.read_text()
    assert "/ (D * n - 1)" in text
    check = cross_check_model(out, against=("jax",))
    inner = {f"l1.{name}" for name in BN_INNER}
    assert check.ok and not [r.name for r in check.rows if r.name in inner]
    assert {"l1.hprebn", "l1.hpreact", "l1.bngain", "l1.bnbias"} <= {r.name for r in check.rows}


@pytest.mark.slow
def test_layernorm_segment(names_txt):
    """The LayerNorm MLP's ``hprelnorm:hpreact``: PROVED, within contract without its inner
    rows; its single-line ``lnvar:lnvar_inv`` is refused (the kernel fails the engine's
    verification where ``lnvar + eps`` is negative), in one line, nothing printed."""
    checked = checked_backward(LAYERNORM, fuse=["hprelnorm:hpreact"], against=("jax",))
    assert checked.check.ok and len(checked.check.rows) == 13
    with pytest.raises(BackwardError, match="lnvar:lnvar_inv: the proved kernel failed"):
        generate_source(LAYERNORM, fuse=["lnvar:lnvar_inv"])
