"""The training backward (Exercise 4): a lean forward plus the derived kernels of generated.py.

Exercise 2 (cross-entropy in one go) and Exercise 3 (BatchNorm in one go) replace the chunked
backward; every gradient here comes from a kernel that ``python -m derivations`` generated.
"""

from __future__ import annotations

import jax

from jaxninja.lecture import generated
from jaxninja.lecture.model import BN_EPS, Params


def loss_and_grads(params: Params, xb: jax.Array, yb: jax.Array) -> tuple[jax.Array, Params]:
    """The loss and all seven parameter gradients, with no autodiff anywhere."""
    C, W1, b1, W2, b2, bngain, bnbias = params
    n = xb.shape[0]
    # forward: only what the backward needs
    emb = C[xb]
    embcat = emb.reshape(n, -1)
    hprebn = embcat @ W1 + b1
    bnmeani = hprebn.mean(0, keepdims=True)
    bndiff = hprebn - bnmeani
    bnvar_inv = jax.lax.rsqrt((bndiff**2).sum(0, keepdims=True) / (n - 1) + BN_EPS)  # not pow
    bnraw = bndiff * bnvar_inv
    h = jax.numpy.tanh(bngain * bnraw + bnbias)
    logits = h @ W2 + b2
    logprobs = jax.nn.log_softmax(logits, axis=1)  # the step's one softmax
    loss = -logprobs[jax.numpy.arange(n), yb].mean()
    # backward: the derived kernels, from the loss down to the embedding table
    dlogits = generated.cross_entropy_logprobs_backward(logprobs, yb)
    dh, dW2, db2 = generated.linear_backward(dlogits, h, W2)
    dhpreact = generated.tanh_backward(dh, h)
    dhprebn, dbngain, dbnbias = generated.batchnorm_backward(dhpreact, bnraw, bnvar_inv, bngain)
    dembcat, dW1, db1 = generated.linear_backward(dhprebn, embcat, W1)
    dC = generated.embedding_backward(dembcat.reshape(emb.shape), xb, C.shape[0])
    return loss, Params(dC, dW1, db1, dW2, db2, dbngain, dbnbias)
