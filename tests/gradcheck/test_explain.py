"""Mismatches explained (issue 24): a float32 row over its bound is recomputed in float64 at the
same inputs and called rounding, a mistake, or correct but unstable in float32."""

from __future__ import annotations

import json

import numpy as np
import pytest

import jaxninja
from jaxninja._cli import main
from jaxninja.config import CheckConfig
from jaxninja.gradcheck import explain, lecture_check
from jaxninja.gradcheck.compare import Row
from jaxninja.gradcheck.lecture_check import cross_check
from jaxninja.models.protocol import Model
from tests.gradcheck.test_model_check import WAVENET


def _fma() -> bool:
    torch = pytest.importorskip("torch")
    return torch.backends.cpu.get_cpu_capability() != "DEFAULT"


@pytest.mark.parametrize(
    "seeds", [(0, 7), pytest.param(range(8), marks=pytest.mark.slow, id="8 seeds")]
)
def test_the_notebook_tanh_rows_are_rounding(seeds, names_dataset):
    """The hpreact story: torch's manual backward with the notebook's ``(1 - h**2) * dh`` misses
    bit-exactness by ~1 eps·scale in 15 rows on FMA CPUs. Correct math: every one is rounding."""
    if not _fma():
        pytest.skip("without FMA kernels the notebook's line is exact: no row to explain")
    for seed in seeds:
        cfg = CheckConfig(against=("torch",), torch_tanh="notebook", seed=seed)
        failing = [r for r in cross_check(cfg, names_dataset).rows if not r.ok]
        assert len(failing) == 15, seed
        for r in failing:
            assert r.verdict == explain.ROUNDING, (seed, r.name, r.diagnosis)
            assert r.diagnosis.startswith("rounding: agrees in float64 to"), r.diagnosis
            assert r.eps_scale64 <= 16 and len(r.growth) == 3  # measured: at most 4


@pytest.mark.slow  # ~8 s, 6 seeds; test_conditioning covers batch 2 in the default run
def test_a_correct_row_is_never_blamed_at_batch_2(names_dataset):
    """Batch 2: BatchNorm of two values outputs ±1/√2 whatever its input, so the gradients from
    hprebn down are 0 by symmetry and their rows cancellations; rows over their bound are never
    called a mistake, and the fused hprebn row is measured at the cancelling terms' scale."""
    pytest.importorskip("torch")
    for seed in range(6):
        cfg = CheckConfig(against=("jax", "torch"), batch_size=2, seed=seed)
        rows = cross_check(cfg, names_dataset).rows
        for r in rows:
            if not r.ok:
                assert r.verdict in (explain.ROUNDING, explain.UNSTABLE), (seed, r)
        (fused,) = [r for r in rows if r.against == "fused" and r.name == "hprebn"]
        assert fused.ok and fused.diagnosis.startswith("batch 2: BatchNorm's output"), seed


def _planted(backward_edit):
    """The lecture's model with its manual backward's result edited."""
    real = lecture_check.lecture_model

    def model(cfg, ds) -> Model:
        m = real(cfg, ds)

        def backward(params, batch, acts):
            return backward_edit(dict(m.backward(params, batch, acts)), batch)

        return m._replace(backward=backward)

    return model


def _dc_set(grads, batch):  # the notebook's dC trap: .set where repeated indices must add
    import jax.numpy as jnp

    xb = batch[0]
    grads["C"] = jnp.zeros_like(grads["C"]).at[xb.ravel()].set(grads["emb"].reshape(-1, 10))
    return grads


def _w2_tiny(grads, batch):  # 2^-20 relative: ~8 eps, invisible to a float32 eye
    grads["W2"] = grads["W2"] * (1 + 2.0**-20)
    return grads


@pytest.mark.parametrize(("edit", "row"), [(_dc_set, "C"), (_w2_tiny, "W2")])
def test_planted_lecture_mistakes_are_mistakes(edit, row, names_dataset, monkeypatch):
    monkeypatch.setattr(lecture_check, "lecture_model", _planted(edit))
    result = cross_check(CheckConfig(against=("jax",)), names_dataset)
    failing = [r for r in result.rows if not r.ok]
    assert [r.name for r in failing] == [row]
    assert failing[0].verdict == explain.MISTAKE
    assert "still differs in float64 by" in failing[0].diagnosis
    relative = failing[0].eps_scale64 * np.finfo(np.float64).eps
    if edit is _w2_tiny:
        assert failing[0].eps_scale < 16  # float32 alone: a few eps·scale
        assert failing[0].diagnosis.startswith("looks like rounding in float32")
        assert relative == pytest.approx(2.0**-20, rel=0.01)  # float64: the planted factor


@pytest.mark.slow  # ~6 s; the lecture's planted mistakes are called mistakes by default
def test_wavenet_planted_scatter_is_a_mistake(names_txt, monkeypatch):
    monkeypatch.setenv("WAVENET_MISTAKES", "dC_set")
    result = jaxninja.cross_check_model(WAVENET, against=("jax",))
    (row,) = [r for r in result.rows if not r.ok]
    assert row.name == "C" and row.verdict == explain.MISTAKE
    assert "scatter without accumulation" in row.diagnosis and "float64" in row.diagnosis


UNSTABLE_MODEL = """
import jax
import jax.numpy as jnp
import numpy as np

def init(key):
    return {"b": np.zeros(6, np.float32)}

def batch(key):  # logits near 1000: the softmax is moderate, logsumexp is ~1000
    return (1000 + 2 * np.random.default_rng(1).standard_normal((8, 6))).astype(np.float32)

def forward(p, x, tap):
    z = tap("z", x + p["b"])
    m = jax.lax.stop_gradient(z.max(1, keepdims=True))
    return (jnp.log(jnp.exp(z - m).sum(1)) + m[:, 0]).sum()  # autodiff: exp(z - m) / sum

def backward(p, x, acts):
    z = acts["z"]
    m = z.max(1, keepdims=True)
    lse = jnp.log(jnp.exp(z - m).sum(1, keepdims=True)) + m  # rounded at 1000's ulp
    dz = jnp.exp(z - lse)  # softmax through lse: loses |lse| eps, growing with the inputs
    return {"z": dz, "b": dz.sum(0)}
"""


def test_a_cancellation_is_unstable_in_float32(tmp_path):
    path = tmp_path / "unstable.py"
    path.write_text(UNSTABLE_MODEL, encoding="utf-8")
    result = jaxninja.cross_check_model(path, against=("jax",))
    z = next(r for r in result.rows if r.name == "z")
    assert not z.ok and z.verdict == explain.UNSTABLE, z
    assert z.growth[0] < z.growth[1] < z.growth[2] and "grows with the inputs'" in z.diagnosis


def test_float64_rows_are_not_rerun():
    row = Row("x", (2,), "jax", False, False, 1e-3, 1e9, 32.0)
    assert explain.candidates([row], "float64") == [] and explain.candidates([row], "float32")

    def rerun(dtype, scale):
        raise AssertionError("no rerun for float64 rows")

    assert explain.explain_rows([row], "float64", rerun) == [row]


@pytest.mark.parametrize(
    ("e32", "e64", "growth", "kind"),
    [
        (3.0, 2.0, (3.0, 2.5, 3.5), explain.ROUNDING),
        (3.0, 2.0, (), explain.ROUNDING),  # growth not measured (the scaled run overflowed)
        (100.0, 1500.0, (100.0, 200.0, 410.0), explain.UNSTABLE),
        (0.6, 0.5, (0.6, 0.7, 2.6), explain.ROUNDING),  # a few eps wandering: not growth
        (1e5, 4e13, (1e5, 1e5, 1e5), explain.MISTAKE),
        (8.0, 4e9, (8.0, 8.0, 8.0), explain.MISTAKE),
    ],
)
def test_verdict_rule(e32, e64, growth, kind):
    assert explain.verdict(e32, e64, growth) == kind


def test_json_carries_both_numbers(tmp_path, capsys):
    path = tmp_path / "unstable.py"
    path.write_text(UNSTABLE_MODEL, encoding="utf-8")
    assert main(["check", "--model", str(path), "--against", "jax", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)["rows"]
    z = next(r for r in rows if r["name"] == "z")
    assert z["verdict"] == explain.UNSTABLE
    assert z["eps_scale"] > 32 and 0 < z["eps_scale_float64"] < 16 * z["eps_scale"]
    assert len(z["growth"]) == 3


def test_a_forward_pinned_to_float32_is_not_explained(tmp_path):
    """A forward that casts to float32 inside computes in float32 in the "float64" rerun too:
    its mistake would look like rounding there. Such a row gets no explanation at all."""
    from tests.gradcheck.test_model_check import tiny

    path = tiny(
        tmp_path,
        (
            'h = tap("h", x @ p["W"] + p["b"])',
            'h = tap("h", (x @ p["W"] + p["b"]).astype("float32"))',
        ),
        ("dh = (1 - acts", "dh = (1 + 2**-16) * (1 - acts"),  # 128 eps: over the bound
    )
    result = jaxninja.cross_check_model(path, against=("jax",))
    failing = [r for r in result.rows if not r.ok]
    assert [r.name for r in failing] == ["h", "W", "b"]
    assert all(r.verdict == "" and "float64" not in r.diagnosis for r in failing)
