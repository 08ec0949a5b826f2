"""An MLP over neighbouring characters, for ``jaxninja backward``'s ``slice`` and
``concatenate`` rules (its backward is written for you: this file has none of its own).

Embeddings (B, T, E) -> each character beside the next one, ``concatenate([emb[:, :-1],
emb[:, 1:]], axis=2)`` (B, T - 1, 2E) -> Linear -> tanh at every pair -> the last pair's
hidden state ``h[:, -1]`` -> Linear to the vocabulary -> cross entropy with the next character.

    jaxninja backward --model examples/models/neighbour_mlp.py
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxninja

N_EMBD, N_HIDDEN, BLOCK_SIZE, BATCH_SIZE = 8, 32, 4, 32


@functools.cache
def _train():
    return jaxninja.load_dataset(None, BLOCK_SIZE)


def _rng(key):
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())


def init(key):
    vocab, rng = _train().vocab.size, _rng(key)

    def randn(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    return {
        "C": randn(vocab, N_EMBD),
        "W1": randn(2 * N_EMBD, N_HIDDEN) / math.sqrt(2 * N_EMBD),
        "b1": 0.1 * randn(N_HIDDEN),
        "W2": 0.1 * randn(N_HIDDEN, vocab),
        "b2": 0.1 * randn(vocab),
    }


def batch(key):
    """Contexts (B, T) and the next character (B,)."""
    train = _train().train
    ix = _rng(key).integers(0, len(train.y), BATCH_SIZE)
    return train.x[ix], train.y[ix]


def forward(params, batch, tap):
    x, y = batch
    emb = tap("emb", params["C"][x])  # (B, T, E)
    before = tap("before", emb[:, :-1])  # (B, T - 1, E): every character but the last
    after = tap("after", emb[:, 1:])  # (B, T - 1, E): every character but the first
    pairs = tap("pairs", jnp.concatenate([before, after], axis=2))  # (B, T - 1, 2E)
    h = tap("h", jnp.tanh(pairs @ params["W1"] + params["b1"]))  # (B, T - 1, H)
    last = tap("last", h[:, -1])  # (B, H): the last pair's
    logits = tap("logits", last @ params["W2"] + params["b2"])
    logprobs = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logprobs, y[:, None], axis=1).mean()


def backward(params, batch, acts):
    """Not written by hand: generate it with ``jaxninja backward --model`` this file."""
    raise NotImplementedError("generate this model's backward: jaxninja backward --model FILE")
