"""PLACEHOLDER, hand-written: to be replaced by the output of ``python -m derivations``.

The signatures here are the contract the generator must keep.
"""

import jax
import jax.numpy as jnp


def cross_entropy_backward(logits: jax.Array, y: jax.Array) -> jax.Array:
    """dlogits = (softmax(logits) - onehot(y)) / n."""
    n = logits.shape[0]
    return (jax.nn.softmax(logits, axis=1) - jax.nn.one_hot(y, logits.shape[1], dtype=logits.dtype)) / n


def batchnorm_backward(dhpreact, bnraw, bnvar_inv, bngain):
    """(dhprebn, dbngain, dbnbias) for BatchNorm with Bessel-corrected variance."""
    n = dhpreact.shape[0]
    dbnbias = jnp.sum(dhpreact, axis=0, keepdims=True)
    dbngain = jnp.sum(bnraw * dhpreact, axis=0, keepdims=True)
    dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dbnbias - n / (n - 1) * bnraw * dbngain)
    return dhprebn, dbngain, dbnbias


def tanh_backward(dh, h):
    """dhpreact = (1 - h**2) * dh."""
    return (1 - h**2) * dh


def linear_backward(dout, x, W):
    """(dx, dW, db) for out = x @ W + b."""
    return dout @ W.T, x.T @ dout, jnp.sum(dout, axis=0)


def embedding_backward(demb, xb, vocab_size):
    """dC: scatter-add of demb (n, block, E) into a (vocab_size, E) table at indices xb."""
    return jnp.zeros((vocab_size, demb.shape[-1]), demb.dtype).at[xb].add(demb)
