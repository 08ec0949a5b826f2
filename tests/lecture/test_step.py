"""The hot loop's contracts: reproducible, resumable (chunking-invariant), uniform batches that
depend only on (key, step), and the learning-rate schedule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import init_params
from jaxninja.lecture.step import Schedule, batch_indices, chunk_indices, learning_rate, train_chunk

VOCAB, BLOCK, N_TRAIN, BATCH = 27, 3, 500, 32


@pytest.fixture(scope="module")
def split() -> tuple[jax.Array, jax.Array]:
    """A small random training split with the lecture's shapes per row."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (N_TRAIN, BLOCK), dtype=np.int32)
    y = rng.integers(0, VOCAB, N_TRAIN, dtype=np.int32)
    return jnp.asarray(x), jnp.asarray(y)


@pytest.fixture(scope="module")
def params():
    return init_params(jax.random.key(1), VOCAB, n_embd=10, n_hidden=64, block_size=BLOCK)


def assert_params_identical(a, b) -> None:
    for name, pa, pb in zip(a._fields, a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(pa), np.asarray(pb), err_msg=name)


def test_same_inputs_give_bit_identical_params(split, params) -> None:
    x, y = split
    key, sched = jax.random.key(7), Schedule()
    p1, l1 = train_chunk(params, key, 0, x, y, 40, BATCH, sched)
    p2, l2 = train_chunk(params, key, 0, x, y, 40, BATCH, sched)
    assert_params_identical(p1, p2)
    np.testing.assert_array_equal(np.asarray(l1), np.asarray(l2))
    # and the run actually trained: the parameters moved
    assert not np.array_equal(np.asarray(p1.W1), np.asarray(params.W1))


def test_one_chunk_equals_two_half_chunks(split, params) -> None:
    """Resuming at step N must reproduce the uninterrupted run bit for bit (resume relies on it);
    the schedule's switch at step 30 falls inside the second half."""
    x, y = split
    key, sched = jax.random.key(3), Schedule(lr=0.1, decay_step=30, decay=0.1)
    whole, losses = train_chunk(params, key, 0, x, y, 40, BATCH, sched)
    half, first = train_chunk(params, key, 0, x, y, 20, BATCH, sched)
    half, second = train_chunk(half, key, 20, x, y, 20, BATCH, sched)
    assert_params_identical(whole, half)
    np.testing.assert_array_equal(np.asarray(losses), np.concatenate([first, second]))


def test_batch_indices_depend_only_on_key_and_step() -> None:
    key = jax.random.key(11)
    ix = np.asarray(chunk_indices(key, 100 + jnp.arange(8), BATCH, N_TRAIN))
    assert ix.shape == (8, BATCH)
    assert ix.min() >= 0 and ix.max() < N_TRAIN
    # any chunk alignment gives the same rows as drawing each step on its own
    shifted = np.asarray(chunk_indices(key, 104 + jnp.arange(8), BATCH, N_TRAIN))
    np.testing.assert_array_equal(ix[4:], shifted[:4])
    for i in range(8):
        np.testing.assert_array_equal(ix[i], batch_indices(key, 100 + i, BATCH, N_TRAIN))
    # different steps and different keys give different batches
    assert not np.array_equal(ix[0], ix[1])
    other = np.asarray(chunk_indices(jax.random.key(12), 100 + jnp.arange(8), BATCH, N_TRAIN))
    assert not np.array_equal(ix, other)


def test_batch_indices_are_uniform_over_the_split() -> None:
    """64,000 draws into 10 rows: each count is Binomial(64000, 0.1), sd = 76; 6 sd (~450)
    fails with probability ~1e-8 per bin for a uniform draw; a missing or doubled row fails."""
    ix = np.asarray(chunk_indices(jax.random.key(5), jnp.arange(2000), 32, 10))
    counts = np.bincount(ix.ravel(), minlength=10)
    assert counts.shape == (10,)
    expected, sd = 6400, (64000 * 0.1 * 0.9) ** 0.5
    assert np.all(np.abs(counts - expected) < 6 * sd), counts


def test_learning_rate_switches_at_decay_step() -> None:
    sched = Schedule(lr=0.1, decay_step=100, decay=0.1)
    lrs = np.asarray(learning_rate(sched, jnp.array([0, 99, 100, 150])), dtype=np.float64)
    # float32 storage of 0.1 and 0.01: relative error below 1e-7
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01], rtol=1e-7)


def test_train_chunk_matches_a_plain_python_sgd_loop(split, params) -> None:
    """train_chunk == eager SGD with batch_indices and the schedule (lr 0.1 for steps 5, 6;
    0.01 for 7, 8), so the scan applies the right batch and rate at each step."""
    x, y = split
    key, sched = jax.random.key(9), Schedule(lr=0.1, decay_step=7, decay=0.1)
    got, losses = train_chunk(params, key, 5, x, y, 4, BATCH, sched)
    p, want_losses, manual = params, [], jax.jit(loss_and_grads)
    for step, lr in zip(range(5, 9), (0.1, 0.1, 0.01, 0.01), strict=True):
        ix = batch_indices(key, step, BATCH, N_TRAIN)
        loss, grads = manual(p, x[ix], y[ix])
        p = jax.tree.map(lambda w, g, lr=lr: w - lr * g, p, grads)
        want_losses.append(float(loss))
    # the scan and this separately compiled step may fuse (round) differently in float32; 4 steps
    # stay within ~1e-6
    # relative, while a wrong rate (0.1 vs 0.01) or batch changes W1 by ~1e-2
    np.testing.assert_allclose(np.asarray(losses), want_losses, rtol=1e-5)
    for name, a, b in zip(p._fields, got, p, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=name)
