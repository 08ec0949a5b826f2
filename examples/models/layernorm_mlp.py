"""An MLP with LayerNorm instead of BatchNorm, for ``jaxninja backward`` (its backward is written
for you: this file has none of its own).

Embedding (B, 3, 10) -> flatten -> Linear 30 -> 64 -> LayerNorm over the 64 features (mean,
biased variance, ``lax.rsqrt``) -> tanh -> Linear 64 -> 27 -> cross entropy. Every intermediate
is tapped under the notebook's names, so the generated backward's rows carry them.

    jaxninja backward --model examples/models/layernorm_mlp.py --out layernorm_mlp_backward.py
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxninja

N_EMBD, N_HIDDEN, BLOCK_SIZE, BATCH_SIZE, LN_EPS = 10, 64, 3, 32, 1e-5


@functools.cache
def _train():
    return jaxninja.load_dataset(None, BLOCK_SIZE)


def _rng(key):
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())


def init(key):
    vocab, rng = _train().vocab.size, _rng(key)

    def randn(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    fan_in = BLOCK_SIZE * N_EMBD
    return {
        "C": randn(vocab, N_EMBD),
        "W1": randn(fan_in, N_HIDDEN) / math.sqrt(fan_in),
        "b1": 0.1 * randn(N_HIDDEN),
        "lngain": 1.0 + 0.1 * randn(N_HIDDEN),
        "lnbias": 0.1 * randn(N_HIDDEN),
        "W2": 0.1 * randn(N_HIDDEN, vocab),
        "b2": 0.1 * randn(vocab),
    }


def batch(key):
    train = _train().train
    ix = _rng(key).integers(0, len(train.y), BATCH_SIZE)
    return train.x[ix], train.y[ix]


def forward(params, batch, tap):
    x, y = batch
    emb = tap("emb", params["C"][x])
    embcat = tap("embcat", emb.reshape(emb.shape[0], -1))
    hprelnorm = tap("hprelnorm", embcat @ params["W1"] + params["b1"])
    lnmean = tap("lnmean", hprelnorm.mean(1, keepdims=True))
    lndiff = tap("lndiff", hprelnorm - lnmean)
    lnvar = tap("lnvar", (lndiff**2).mean(1, keepdims=True))
    lnvar_inv = tap("lnvar_inv", lax.rsqrt(lnvar + LN_EPS))
    lnraw = tap("lnraw", lndiff * lnvar_inv)
    hpreact = tap("hpreact", params["lngain"] * lnraw + params["lnbias"])
    h = tap("h", jnp.tanh(hpreact))
    logits = tap("logits", h @ params["W2"] + params["b2"])
    logprobs = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logprobs, y[:, None], axis=1).mean()


def backward(params, batch, acts):
    """Not written by hand: generate it with ``jaxninja backward --model`` this file."""
    raise NotImplementedError("generate this model's backward: jaxninja backward --model FILE")
