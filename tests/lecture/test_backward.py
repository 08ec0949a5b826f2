"""Exercise 1's contract: manual JAX vs jax.grad bit-exact in all 26 rows, plus independent
checks (invariants with an absolute floor, float64 finite differences, shape refusal)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja.data import build_dataset, build_vocab
from jaxninja.gradcheck.compare import compare, compare_rows
from jaxninja.lecture.backward import ROWS, manual_backward, reference_grads
from jaxninja.lecture.model import forward_chunked, init_params
from tests.helpers import COMBOS, NOTEBOOK, ODD, batch

SEEDS = range(20)


def grads(seed, shape, dtype):
    params, xb, yb = batch(seed, shape, dtype)
    fwd = forward_chunked(params, xb, yb)
    return fwd, manual_backward(params, fwd, xb, yb), reference_grads(params, xb, yb)


def assert_bit_exact(manual, reference):
    rows = compare_rows(
        {k: np.asarray(v) for k, v in manual.items()},
        {k: np.asarray(v) for k, v in reference.items()},
        "jax",
    )
    broken = [(r.name, r.maxdiff) for r in rows if not r.exact]
    assert len(rows) == 26 and not broken, broken


@pytest.mark.parametrize(("shape", "dtype"), COMBOS)
def test_bit_exact_vs_jax_grad_over_20_seeds(shape, dtype, x64):
    for seed in SEEDS:
        _, manual, reference = grads(seed, shape, jnp.dtype(dtype))
        assert manual["W1"].dtype == jnp.dtype(dtype)
        assert_bit_exact(manual, reference)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jit_within_32_eps_scale(dtype, x64):
    """Under jit XLA may fuse the two backwards differently: the contract is 32 eps·scale."""
    for seed in range(3):
        params, xb, yb = batch(seed, NOTEBOOK, jnp.dtype(dtype))
        fwd = jax.jit(forward_chunked)(params, xb, yb)
        manual = jax.jit(manual_backward)(params, fwd, xb, yb)
        reference = jax.jit(reference_grads)(params, xb, yb)
        rows = compare_rows(
            {k: np.asarray(v) for k, v in manual.items()},
            {k: np.asarray(v) for k, v in reference.items()},
            "jax",
            32.0,
        )
        assert all(r.ok for r in rows), [(r.name, r.eps_scale) for r in rows if not r.ok]


def test_notebook_log_line_is_not_exact_at_odd_batch(x64):
    """Why dprobs = dlogprobs / probs: (1/probs) * dlogprobs rounds twice, and only -1/n for n a
    power of two makes that harmless. At n = 7 the notebook's line differs from jax.grad."""
    differs = 0
    for seed in SEEDS:
        fwd, manual, _ = grads(seed, ODD, jnp.float64)
        notebook = (1.0 / fwd.probs) * (manual["logprobs"])
        differs += int(not np.array_equal(notebook, manual["probs"]))
    assert differs > 0


def test_invariants_with_absolute_floor(x64):
    """dlogit_maxes ~ 0 (the shift does not change the loss), db1 ~ 0 (BatchNorm removes b1),
    rows of dlogits sum to ~0 (softmax minus one-hot). Floor: 64 eps at the upstream scale
    (times n for db1, a sum over the batch)."""
    for shape, dtype in [(NOTEBOOK, jnp.float32), (ODD, jnp.float64)]:
        eps = float(jnp.finfo(dtype).eps)
        for seed in range(5):
            _, manual, _ = grads(seed, shape, dtype)
            floor = 64 * eps * float(jnp.abs(manual["norm_logits"]).max())
            assert float(jnp.abs(manual["logit_maxes"]).max()) <= floor
            assert float(jnp.abs(manual["logits"].sum(1)).max()) <= floor
            floor_b1 = 64 * eps * float(jnp.abs(manual["hprebn"]).max()) * shape["batch"]
            assert float(jnp.abs(manual["b1"]).max()) <= floor_b1


def test_finite_differences_float64_on_tiny_data(x64):
    """Central differences of the loss for every scalar of the 7 parameters, float64, on a tiny
    data set whose batch repeats indices (so dC must accumulate). h = 1e-6: truncation ~h^2 and
    rounding ~1e-16/h, both far below the 1e-7 tolerance."""
    words = ["ab", "ba", "abba", "b"]
    vocab = build_vocab(words)
    split = build_dataset(words, vocab, 2)
    ix = np.array([0, 1, 1, 3, 3, 3, 5, 7])
    xb, yb = jnp.asarray(split.x[ix]), jnp.asarray(split.y[ix])
    params = init_params(jax.random.key(3), vocab.size, 2, 4, 2, jnp.float64)
    manual = manual_backward(params, forward_chunked(params, xb, yb), xb, yb)
    loss = jax.jit(lambda p: forward_chunked(p, xb, yb).loss)
    h = 1e-6
    for name, p in params._asdict().items():
        flat = np.asarray(p).ravel()
        fd = np.empty_like(flat)
        for i in range(flat.size):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += h
            minus[i] -= h
            fd[i] = (
                loss(params._replace(**{name: jnp.asarray(plus.reshape(p.shape))}))
                - loss(params._replace(**{name: jnp.asarray(minus.reshape(p.shape))}))
            ) / (2 * h)
        np.testing.assert_allclose(np.asarray(manual[name]).ravel(), fd, atol=1e-7, err_msg=name)
    assert np.abs(np.asarray(manual["C"])).max() > 1e-3  # the check had something to check


def test_comparator_fails_a_shape_mismatch_with_its_reason():
    """A (64,) gradient for a (1, 64) tensor is a failing row naming both shapes (not a silent
    broadcast, not a traceback), diagnosed as the missing keepdims it is."""
    ref = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)
    row = compare("bngain", ref.reshape(64), ref, "jax", bound=32)
    assert not row.ok and not row.exact and row.shape == (1, 64)
    assert row.reason == "shape (64,) for a (1, 64) value"
    assert "keepdims" in row.diagnosis
    assert row.as_json()["eps_scale"] is None and row.as_json()["reason"] == row.reason


def test_comparator_measures_eps_scale():
    ref = np.array([1.0, -2.0], np.float32)
    row = compare("x", ref + np.float32(2 * 2**-23 * 2), ref, "jax", bound=4)
    assert not row.exact and row.close and row.eps_scale == pytest.approx(2.0) and row.ok


def test_rows_are_the_notebooks_26():
    assert len(ROWS) == 26 and ROWS[0] == "logprobs" and ROWS[-1] == "C"
