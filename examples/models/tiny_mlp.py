"""The smallest model file that trains: embedding -> linear -> tanh -> linear -> cross entropy,
with its backward written by hand. ``jaxninja check --model`` checks it; ``jaxninja train
--model`` trains it with that backward; ``sample`` and ``evaluate --model`` use its logits.

    jaxninja check --model examples/models/tiny_mlp.py
    jaxninja train --model examples/models/tiny_mlp.py --steps 2000 --out runs/tiny
    jaxninja sample --model examples/models/tiny_mlp.py --checkpoint runs/tiny

It has no BatchNorm, so nothing is carried through training (no ``stats_init``) and nothing is
calibrated afterwards (no ``calibrate``): ``logits`` takes ``stats=None``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxninja

N_EMBD, N_HIDDEN, BLOCK_SIZE, BATCH_SIZE = 8, 32, 3, 32
train_defaults = {"block_size": BLOCK_SIZE, "batch_size": BATCH_SIZE, "steps": 2_000}


@functools.cache
def _data():
    """The check's data: the notebook's training split (names.txt via $JAXNINJA_NAMES, else
    jaxninja's default data set)."""
    return jaxninja.load_dataset(None, BLOCK_SIZE)


def init(key, vocab_size=None):
    """Weights / sqrt(fan_in), the output layer scaled by 0.1, biases 0.01 (not 0: a zero
    could hide a wrong backward)."""
    vocab_size = vocab_size or _data().vocab.size
    k = jax.random.split(key, 3)
    fan_in = N_EMBD * BLOCK_SIZE
    return {
        "C": jax.random.normal(k[0], (vocab_size, N_EMBD)),
        "W1": jax.random.normal(k[1], (fan_in, N_HIDDEN)) / fan_in**0.5,
        "b1": jnp.full((N_HIDDEN,), 0.01),
        "W2": 0.1 * jax.random.normal(k[2], (N_HIDDEN, vocab_size)) / N_HIDDEN**0.5,
        "b2": jnp.full((vocab_size,), 0.01),
    }


def batch(key):
    """For ``check --model``: BATCH_SIZE training examples (training draws its own)."""
    train = _data().train
    ix = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist()).integers(
        0, len(train.y), BATCH_SIZE
    )
    return train.x[ix], train.y[ix]


def logits(params, stats, x):
    """Next-character logits of contexts ``x`` (N, BLOCK_SIZE)."""
    embcat = params["C"][x].reshape(x.shape[0], -1)
    h = jnp.tanh(embcat @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def forward(params, batch, tap):
    x, y = batch
    emb = tap("emb", params["C"][x])
    embcat = tap("embcat", emb.reshape(x.shape[0], -1))
    hpre = tap("hpre", embcat @ params["W1"] + params["b1"])
    h = tap("h", jnp.tanh(hpre))
    logits_ = tap("logits", h @ params["W2"] + params["b2"])
    logprobs = jax.nn.log_softmax(logits_, axis=1)
    return -jnp.take_along_axis(logprobs, y[:, None], axis=1).mean()


def backward(params, batch, acts):
    """Every gradient by hand: dX = d loss / d X."""
    x, y = batch
    n = x.shape[0]
    probs = jax.nn.softmax(acts["logits"], axis=1)
    dlogits = (probs - jax.nn.one_hot(y, probs.shape[1], dtype=probs.dtype)) / n
    dh = dlogits @ params["W2"].T
    dhpre = (1.0 - acts["h"] ** 2) * dh
    dembcat = dhpre @ params["W1"].T
    demb = dembcat.reshape(acts["emb"].shape)
    return {
        "logits": dlogits,
        "W2": acts["h"].T @ dlogits,
        "b2": dlogits.sum(0),
        "h": dh,
        "hpre": dhpre,
        "W1": acts["embcat"].T @ dhpre,
        "b1": dhpre.sum(0),
        "embcat": dembcat,
        "emb": demb,
        "C": jnp.zeros_like(params["C"]).at[x].add(demb),
    }
