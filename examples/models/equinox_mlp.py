"""The makemore MLP as people write it in Equinox: an ``eqx.Module`` and a loss, with a torch
``nn.Module`` as the reference, checked row by row against ``jax.grad`` and torch::

    jaxninja check --model examples/models/equinox_mlp.py
    EQX_MISTAKES=dW_transposed jaxninja check --model examples/models/equinox_mlp.py  # fails

Needs ``pip install -e '.[modules]'`` (equinox). The module marks its intermediates with
``jaxninja.gradcheck.modules.tap``: the identity outside a check, a row inside one. The batch is
random characters (no data file): 32 contexts of 3 characters from a 27-letter vocabulary.
"""

import os

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxninja.gradcheck.modules import equinox_model, tap, torch_module_forward

V, E, T, H, B = 27, 10, 3, 64, 32  # vocabulary, embedding, context, hidden, batch
MISTAKES = set(filter(None, os.environ.get("EQX_MISTAKES", "").split(",")))


class MLP(eqx.Module):
    C: jax.Array
    l1: eqx.nn.Linear
    l2: eqx.nn.Linear

    def __init__(self, key):
        k0, k1, k2 = jax.random.split(key, 3)
        self.C = jax.random.normal(k0, (V, E))
        self.l1 = eqx.nn.Linear(T * E, H, key=k1)
        self.l2 = eqx.nn.Linear(H, V, key=k2)

    def __call__(self, x):
        emb = tap("emb", self.C[x])
        hpreact = tap("hpreact", jax.vmap(self.l1)(emb.reshape(x.shape[0], -1)))
        h = tap("h", jnp.tanh(hpreact))
        return tap("logits", jax.vmap(self.l2)(h))


def loss(model, batch):
    x, y = batch
    logprobs = jax.nn.log_softmax(model(x))
    return -logprobs[jnp.arange(x.shape[0]), y].mean()


init, forward = equinox_model(MLP, loss)


def batch(key):
    kx, ky = jax.random.split(key)
    return jax.random.randint(kx, (B, T), 0, V), jax.random.randint(ky, (B,), 0, V)


def backward(params, batch, acts):
    """The manual backward: the names are the taps' and the parameters' (``l1.weight``)."""
    x, y = batch
    n = x.shape[0]
    dlogits = (jax.nn.softmax(acts["logits"]) - jax.nn.one_hot(y, V)) / n
    h, flat = acts["h"], acts["emb"].reshape(n, -1)
    dW2 = dlogits.T @ h  # (out, in): Equinox's and torch's layout
    dh = dlogits @ params["l2.weight"]
    dhpreact = (1 - h**2) * dh
    dflat = dhpreact @ params["l1.weight"]
    demb = dflat.reshape(acts["emb"].shape)
    return {
        "logits": dlogits,
        "l2.weight": dW2.T if "dW_transposed" in MISTAKES else dW2,
        "l2.bias": dlogits.sum(0),
        "h": dh,
        "hpreact": dhpreact,
        "l1.weight": dhpreact.T @ flat,
        "l1.bias": dhpreact.sum(0),
        "emb": demb,
        "C": jnp.zeros((V, E), demb.dtype).at[x].add(demb),
    }


def _torch_mlp():
    import torch
    from torch import nn

    class TorchMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.C = nn.Parameter(torch.zeros(V, E))
            self.l1 = nn.Linear(T * E, H)
            self.l2 = nn.Linear(H, V)

        def forward(self, x):
            emb = tap("emb", self.C[x])
            hpreact = tap("hpreact", self.l1(emb.reshape(x.shape[0], -1)))
            h = tap("h", torch.tanh(hpreact))
            return tap("logits", self.l2(h))

    return TorchMLP()


def _torch_loss(call, batch):
    import torch.nn.functional as F

    x, y = batch
    return F.cross_entropy(call(x), y)


NAMES = {n: n for n in ("C", "l1.weight", "l1.bias", "l2.weight", "l2.bias")}  # same layouts
torch_forward = torch_module_forward(_torch_mlp, NAMES, _torch_loss)
