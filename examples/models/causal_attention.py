"""A single-head causal self-attention block over 8 characters, for ``jaxninja backward`` (its
backward is written for you: this file has none of its own).

Token and position embeddings (B, T, C) -> q, k, v projections -> scores q k^T / sqrt(C),
masked causally (``jnp.where`` with -inf) -> softmax over the keys -> weighted values -> a
residual add -> Linear to the vocabulary -> cross entropy at every position (the next
character of each prefix).

    jaxninja backward --model examples/models/causal_attention.py --out attention_backward.py
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxninja

N_EMBD, BLOCK_SIZE, BATCH_SIZE = 16, 8, 32


@functools.cache
def _train():
    return jaxninja.load_dataset(None, BLOCK_SIZE)


def _rng(key):
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())


def init(key):
    vocab, rng = _train().vocab.size, _rng(key)

    def randn(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    scale = 1 / math.sqrt(N_EMBD)
    return {
        "tok": randn(vocab, N_EMBD),
        "pos": 0.1 * randn(BLOCK_SIZE, N_EMBD),
        "Wq": scale * randn(N_EMBD, N_EMBD),
        "Wk": scale * randn(N_EMBD, N_EMBD),
        "Wv": scale * randn(N_EMBD, N_EMBD),
        "Wout": 0.1 * randn(N_EMBD, vocab),
        "bout": 0.1 * randn(vocab),
    }


def batch(key):
    """Contexts (B, T) and their targets (B, T): each position's next character."""
    train = _train().train
    ix = _rng(key).integers(0, len(train.y), BATCH_SIZE)
    x, y = train.x[ix], train.y[ix]
    return x, np.concatenate([x[:, 1:], y[:, None]], axis=1)


def forward(params, batch, tap):
    x, y = batch
    b, t = x.shape
    emb = tap("emb", params["tok"][x] + params["pos"])
    q = tap("q", emb @ params["Wq"])
    k = tap("k", emb @ params["Wk"])
    v = tap("v", emb @ params["Wv"])
    scores = tap("scores", q @ k.transpose(0, 2, 1) / math.sqrt(N_EMBD))
    causal = jnp.tril(jnp.ones((t, t), dtype=bool))
    masked = tap("masked", jnp.where(causal, scores, -jnp.inf))
    att = tap("att", jax.nn.softmax(masked, axis=-1))
    out = tap("out", emb + att @ v)
    logits = tap("logits", out.reshape(b * t, -1) @ params["Wout"] + params["bout"])
    logprobs = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logprobs, y.reshape(-1)[:, None], axis=1).mean()


def backward(params, batch, acts):
    """Not written by hand: generate it with ``jaxninja backward --model`` this file."""
    raise NotImplementedError("generate this model's backward: jaxninja backward --model FILE")
