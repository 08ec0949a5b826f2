"""The model: the notebook's parameter counts and a chunked forward equal to the fused one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja.lecture.model import (
    Intermediates,
    batch_stats,
    forward_chunked,
    init_params,
    loss_fused,
    n_params,
)

NOTEBOOK_ORDER = (
    "emb embcat hprebn bnmeani bndiff bndiff2 bnvar bnvar_inv bnraw hpreact h "
    "logits logit_maxes norm_logits counts counts_sum counts_sum_inv probs "
    "logprobs loss"
).split()


def test_parameter_counts_match_the_lecture():
    key = jax.random.key(0)
    assert n_params(init_params(key, 27, 10, 64, 3)) == 4137
    assert n_params(init_params(key, 27, 10, 200, 3)) == 12297


def test_intermediates_are_in_notebook_order():
    assert Intermediates._fields == tuple(NOTEBOOK_ORDER)


def test_chunked_forward_equals_fused_loss(names_dataset):
    params = init_params(jax.random.key(1), 27)
    xb, yb = names_dataset.train.x[:32], names_dataset.train.y[:32]
    fwd = forward_chunked(params, xb, yb)
    # float32, a handful of roundings apart: 4 eps at the loss's scale
    np.testing.assert_allclose(fwd.loss, loss_fused(params, xb, yb), rtol=4 * 1.2e-7)
    # at init the loss is near -log(1/27) = 3.3, as the lecture says
    assert 3.0 < float(fwd.loss) < 4.0


def test_batch_stats_use_bessels_correction():
    hprebn = jnp.array([[1.0], [2.0], [6.0]])
    mean, var = batch_stats(hprebn)
    assert float(mean[0, 0]) == 3.0 and float(var[0, 0]) == 7.0  # (4 + 1 + 9) / (3 - 1)


def _eager_init(key, vocab_size, n_embd, n_hidden, block_size, dtype):
    """init_params as it was written before its draws became one program: a jax op each."""
    keys = jax.random.split(key, 7)
    fan_in = n_embd * block_size
    shapes = [(vocab_size, n_embd), (fan_in, n_hidden), (n_hidden,), (n_hidden, vocab_size),
              (vocab_size,), (1, n_hidden), (1, n_hidden)]  # fmt: skip
    C, W1, b1, W2, b2, g, b = (
        jax.random.normal(k, s, dtype) for k, s in zip(keys, shapes, strict=True)
    )
    return (C, W1 * (5 / 3) / fan_in**0.5, b1 * 0.1, W2 * 0.1, b2 * 0.1, g * 0.1 + 1.0, b * 0.1)


# float64 is slow (~15 s: every eager draw compiles again under x64); float32 runs by default
@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_init_params_and_start_state_equal_the_eager_draws_bit_for_bit(dtype, request):
    """One compiled draw (W1's scale inside it, from traced scalars), the rest scaled on the
    host, gives what seven eager draws and jax's own scaling ops gave (a fused multiply-add, a
    constant folded into a reciprocal or numpy's division would be an ulp off somewhere)."""
    from jaxninja.config import TrainConfig
    from jaxninja.training.loop import start_state

    if dtype == "float64":
        request.getfixturevalue("x64")
    sizes_seeds = (((27, 10, 200, 3), 2147483647), ((30, 7, 33, 5), 2**32 - 1), ((5, 3, 17, 8), 7))
    for sizes, seed in sizes_seeds:
        mine = init_params(jax.random.key(seed), *sizes, dtype=jnp.dtype(dtype))
        reference = _eager_init(jax.random.key(seed), *sizes, jnp.dtype(dtype))
        for a, b in zip(mine, reference, strict=True):
            assert a.dtype == b.dtype == dtype
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        vocab, n_embd, n_hidden, block = sizes
        config = TrainConfig(
            n_embd=n_embd, n_hidden=n_hidden, block_size=block, seed=seed, dtype=dtype
        )
        state = start_state(config, vocab)
        init_key, batch_key = jax.random.split(jax.random.key(seed))
        for a, b in zip(state.params, _eager_init(init_key, *sizes, jnp.dtype(dtype)), strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        assert np.array_equal(jax.random.key_data(state.batch_key), jax.random.key_data(batch_key))


def test_init_params_traces_inside_a_callers_jit():
    params = jax.jit(lambda k: init_params(k, 27, 10, 64, 3))(jax.random.key(0))
    assert n_params(params) == 4137 and params.bngain.shape == (1, 64)
