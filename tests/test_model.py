"""The model: the notebook's parameter counts and a chunked forward equal to the fused one."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.model import (
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
