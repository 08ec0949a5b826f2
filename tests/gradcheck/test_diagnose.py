"""The diagnosing cmp (issue 13): every pattern recognised on a planted case, and no pattern
claimed on a correct gradient or on random noise (over seeds)."""

from __future__ import annotations

import numpy as np
import pytest

import jaxninja
from jaxninja.gradcheck.compare import compare
from jaxninja.gradcheck.diagnose import NO_PATTERN, diagnose, factors

SEEDS = range(8)
EPS32 = float(np.finfo(np.float32).eps)


def grad(seed: int, *shape: int) -> np.ndarray:
    """A stand-in true gradient: float32 normal values."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def rounded(ref: np.ndarray, seed: int, ulps: float = 3.0) -> np.ndarray:
    """``ref`` with rounding-sized noise, a few eps·scale (what a correct backward in another
    summation order gives)."""
    noise = np.random.default_rng(100 + seed).uniform(-1, 1, ref.shape)
    return (ref + noise * ulps * EPS32 * np.abs(ref).max()).astype(np.float32)


@pytest.mark.parametrize("seed", SEEDS)
def test_correct_and_noise_claim_nothing(seed):
    ref = grad(seed, 32, 64)
    assert diagnose(ref.copy(), ref) == ""  # exact: nothing to say
    assert diagnose(rounded(ref, seed), ref).startswith("agrees to")
    assert "hpreact" in diagnose(rounded(ref, seed), ref)  # points at README's story
    noise = grad(seed + 1000, 32, 64)
    assert diagnose(noise, ref, n=32, indices=[np.arange(32) % 27]) == NO_PATTERN
    square = grad(seed, 27, 27)
    assert diagnose(grad(seed + 2000, 27, 27), square, n=[32, 128]) == NO_PATTERN
    # the scatter pattern needs the repeated rows to be the only wrong ones
    ix = np.random.default_rng(seed).integers(0, 27, (32, 3))
    dC = grad(seed, 27, 10)
    assert diagnose(dC + 1.0, dC, indices=[ix]) == NO_PATTERN
    assert diagnose(rounded(dC, seed), dC, indices=[ix]).startswith("agrees to")


@pytest.mark.parametrize("seed", SEEDS)
def test_broadcast_hidden_shape(seed):
    ref = grad(seed, 1, 64)
    assert "missing keepdims=True" in diagnose(ref.reshape(64), ref)
    assert "reshape" in diagnose(ref.reshape(8, 8), ref)
    assert diagnose(grad(seed + 1, 64), ref) == f"wrong shape (64,) for (1, 64): {NO_PATTERN}"


@pytest.mark.parametrize("seed", SEEDS)
def test_transposed(seed):
    ref = grad(seed, 30, 64)
    assert diagnose(ref.T.copy(), ref).startswith("transposed")
    square = grad(seed, 64, 64)
    assert diagnose(square.T.copy(), square).startswith("transposed")
    symmetric = square + square.T  # its transpose is itself: right, not "transposed"
    assert diagnose(symmetric.T.copy(), symmetric) == ""


@pytest.mark.parametrize("seed", SEEDS)
def test_not_summed_and_summed_over_too_few_axes(seed):
    full = grad(seed, 32, 4, 64)  # a (B, T, H) product whose (H,) gradient sums over (0, 1)
    ref = full.sum((0, 1))
    assert diagnose(full, ref).startswith("not summed over axis (0, 1)")
    assert diagnose(full.sum(0), ref).startswith("not summed over axis 0")
    keep = full.sum((0, 1), keepdims=True)
    assert diagnose(full.sum(0, keepdims=True), keep).startswith("not summed over axis 1")
    other = grad(seed + 1, 32, 4, 64).sum(0)
    assert diagnose(other, ref) == f"wrong shape (4, 64) for (64,): {NO_PATTERN}"


def test_summed_over_the_wrong_axis():
    x = grad(0, 32, 27)
    assert "summed over axis 0 where the gradient is summed over 1" in diagnose(
        x.sum(0, keepdims=True), x.sum(1, keepdims=True)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_every_constant_factor_of_the_list(seed):
    ref = grad(seed, 32, 64)
    for label, value in factors([32]):
        why = diagnose((ref * value).astype(np.float32), ref, n=32)
        assert why.startswith(f"off by a constant factor {label}"), (label, why)
    assert [label.split(" = ")[0] for label, _ in factors([32])] == [
        "-1", "2", "1/2", "n", "1/n", "n - 1", "n/(n - 1)",
    ]  # fmt: skip
    assert diagnose((ref * 1.3).astype(np.float32), ref, n=32) == NO_PATTERN


def test_batch_count_of_a_b_t_row_is_b_times_t():
    ref = grad(0, 32, 4, 64)
    assert "n = 128" in diagnose(ref * 128, ref)  # no n given: B*T from the row's shape
    assert factors([2]) == [("-1", -1.0), ("2", 2.0), ("1/2", 0.5)]  # n = 2 repeats; n - 1 = 1


@pytest.mark.parametrize("seed", SEEDS)
def test_scatter_without_accumulation(seed):
    """The notebook's dC trap: C[xb] with repeated characters, written back with .set."""
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, 27, (32, 3))
    demb = grad(seed, 32, 3, 10)
    dC = np.zeros((27, 10), np.float32)
    np.add.at(dC, ix, demb)
    wrong = np.zeros((27, 10), np.float32)
    wrong[ix] = demb  # no accumulation: the last write wins
    assert "scatter without accumulation" in diagnose(wrong, dC, indices=[ix])
    assert "scatter" not in diagnose(wrong, dC)  # without the indices it cannot tell
    assert "scatter" in diagnose(wrong, dC, indices=ix)  # one array is fine too
    assert diagnose(dC.copy(), dC, indices=[ix]) == ""


@pytest.mark.parametrize("seed", SEEDS)
def test_permutation(seed):
    ref = grad(seed, 32, 27)
    perm = np.random.default_rng(seed).permutation(ref.ravel()).reshape(ref.shape)
    assert diagnose(perm, ref).startswith("right values at the wrong positions")


def test_compare_row_carries_the_diagnosis_and_json_says_it():
    ref = grad(0, 30, 64)
    row = compare("W1", ref * 2, ref, "jax", bound=32)
    assert not row.ok and row.diagnosis.startswith("off by a constant factor 2")
    assert row.as_json()["diagnosis"] == row.diagnosis
    assert compare("W1", ref, ref, "jax").diagnosis == ""  # passing rows: nothing to diagnose


def test_cmp_prints_the_notebooks_line_and_the_diagnosis(capsys):
    ref = grad(0, 32, 64)
    assert jaxninja.cmp("hpreact", ref * 32, ref) is None  # like the lecture's: prints only
    line = capsys.readouterr().out.strip()
    assert line.startswith("hpreact         | exact: False | approximate: False | maxdiff: ")
    assert line.endswith("off by a constant factor n = 32: mine = 32 × true")
    jaxninja.cmp("h", ref, ref)
    assert capsys.readouterr().out.strip().endswith("maxdiff: 0.0")  # exact: no diagnosis
    jaxninja.cmp("probs", ..., ref)  # the exercises notebook's blank
    assert capsys.readouterr().out.strip() == "probs           | not yet: fill in dprobs"


def test_inf_gradients_are_called_inf_without_warnings():
    """#25: a true gradient with inf entries (sqrt at 0) was called "a permutation", with
    RuntimeWarnings from inf - inf. It says inf, and numpy stays quiet."""
    import warnings

    ref = np.array([[np.inf, 1.0, 2.0], [3.0, np.inf, 4.0]], np.float32)
    finite = np.where(np.isinf(ref), 1e30, ref).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        row = compare("h", finite, ref, "jax", bound=32.0)
        assert not row.ok and row.diagnosis.startswith("the true gradient has 2 inf entries")
        assert "permutation" not in row.diagnosis
        both = compare("h", ref.copy(), ref, "jax", bound=32.0)
        assert both.diagnosis.startswith("2 inf entries where the true gradient has them too")
        mine = ref.copy()
        mine[0, 1] = np.nan
        assert diagnose(mine, np.ones_like(ref)) == "2 inf and 1 nan entries in the gradient"
