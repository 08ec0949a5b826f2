"""The makemore MLP as people write it in Flax linen: an ``nn.Module`` with ``@nn.compact`` and
a loss, its intermediates marked the way Flax marks them for gradients (``self.perturb``) or with
jaxninja's ``tap``, and a torch ``nn.Module`` as the reference (``nn.Dense`` kernels are the
transposes of ``nn.Linear`` weights: the name map says ``.T``)::

    jaxninja check --model examples/models/flax_linen_mlp.py
    LINEN_MISTAKES=dh_doubled jaxninja check --model examples/models/flax_linen_mlp.py  # fails

Needs ``pip install -e '.[modules]'`` (flax). The batch is random characters (no data file).
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxninja.gradcheck.modules import linen_model, tap, torch_module_forward

V, E, T, H, B = 27, 10, 3, 64, 32  # vocabulary, embedding, context, hidden, batch
MISTAKES = set(filter(None, os.environ.get("LINEN_MISTAKES", "").split(",")))


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        C = self.param("C", nn.initializers.normal(1.0), (V, E))
        emb = tap("emb", C[x])
        hpreact = self.perturb("hpreact", nn.Dense(H, name="l1")(emb.reshape(x.shape[0], -1)))
        h = self.perturb("h", jnp.tanh(hpreact))
        return self.perturb("logits", nn.Dense(V, name="l2")(h))


def loss(call, batch):
    x, y = batch
    logprobs = jax.nn.log_softmax(call(x))
    return -logprobs[jnp.arange(x.shape[0]), y].mean()


def _sample(key):  # what init traces the module with: one batch's contexts
    return (jnp.zeros((B, T), jnp.int32),)


init, forward = linen_model(MLP(), loss, _sample)


def batch(key):
    kx, ky = jax.random.split(key)
    return jax.random.randint(kx, (B, T), 0, V), jax.random.randint(ky, (B,), 0, V)


def backward(params, batch, acts):
    """The manual backward, named as the rows (``perturb``'s and ``tap``'s names, ``l1.kernel``)."""
    x, y = batch
    n = x.shape[0]
    dlogits = (jax.nn.softmax(acts["logits"]) - jax.nn.one_hot(y, V)) / n
    h, flat = acts["h"], acts["emb"].reshape(n, -1)
    dh = dlogits @ params["l2"]["kernel"].T
    if "dh_doubled" in MISTAKES:
        dh = 2 * dh
    dhpreact = (1 - h**2) * dh
    demb = (dhpreact @ params["l1"]["kernel"].T).reshape(acts["emb"].shape)
    return {
        "logits": dlogits,
        "l2.kernel": h.T @ dlogits,  # (in, out): Flax's layout
        "l2.bias": dlogits.sum(0),
        "h": dh,
        "hpreact": dhpreact,
        "l1.kernel": flat.T @ dhpreact,
        "l1.bias": dhpreact.sum(0),
        "emb": demb,
        "C": jnp.zeros((V, E), demb.dtype).at[x].add(demb),
    }


def _torch_mlp():
    import torch
    from torch import nn as tnn

    class TorchMLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.C = tnn.Parameter(torch.zeros(V, E))
            self.l1 = tnn.Linear(T * E, H)
            self.l2 = tnn.Linear(H, V)

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


NAMES = {  # JAX name -> torch name; .T: nn.Linear stores (out, in), nn.Dense's kernel (in, out)
    "C": "C",
    "l1.kernel": "l1.weight.T",
    "l1.bias": "l1.bias",
    "l2.kernel": "l2.weight.T",
    "l2.bias": "l2.bias",
}
torch_forward = torch_module_forward(_torch_mlp, NAMES, _torch_loss)
