"""The makemore MLP as people write it in Flax (nnx): an ``nnx.Module`` called through
``nnx.jit`` inside the loss, with a torch ``nn.Module`` as the reference, whose ``nn.Linear``
weights are the transposes of Flax's kernels (the name map says ``.T``)::

    jaxninja check --model examples/models/flax_mlp.py
    FLAX_MISTAKES=db_unsummed jaxninja check --model examples/models/flax_mlp.py  # fails

Needs ``pip install -e '.[modules]'`` (flax). The batch is random characters (no data file).
"""

import os

import jax
import jax.numpy as jnp
from flax import nnx

from jaxninja.gradcheck.modules import nnx_model, tap, torch_module_forward

V, E, T, H, B = 27, 10, 3, 64, 32  # vocabulary, embedding, context, hidden, batch
MISTAKES = set(filter(None, os.environ.get("FLAX_MISTAKES", "").split(",")))


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.C = nnx.Param(jax.random.normal(rngs.params(), (V, E)))
        self.l1 = nnx.Linear(T * E, H, rngs=rngs)
        self.l2 = nnx.Linear(H, V, rngs=rngs)

    def __call__(self, x):
        emb = tap("emb", self.C[...][x])
        hpreact = tap("hpreact", self.l1(emb.reshape(x.shape[0], -1)))
        h = tap("h", jnp.tanh(hpreact))
        return tap("logits", self.l2(h))


@nnx.jit
def _logits(model, x):
    return model(x)


def loss(model, batch):
    x, y = batch
    logprobs = jax.nn.log_softmax(_logits(model, x))  # the taps sit inside nnx.jit
    return -logprobs[jnp.arange(x.shape[0]), y].mean()


init, forward = nnx_model(MLP, loss)


def batch(key):
    kx, ky = jax.random.split(key)
    return jax.random.randint(kx, (B, T), 0, V), jax.random.randint(ky, (B,), 0, V)


def backward(params, batch, acts):
    """The manual backward, named as the taps and ``nnx.to_pure_dict`` (``l1.kernel``)."""
    x, y = batch
    n = x.shape[0]
    dlogits = (jax.nn.softmax(acts["logits"]) - jax.nn.one_hot(y, V)) / n
    h, flat = acts["h"], acts["emb"].reshape(n, -1)
    dh = dlogits @ params["l2"]["kernel"].T
    dhpreact = (1 - h**2) * dh
    demb = (dhpreact @ params["l1"]["kernel"].T).reshape(acts["emb"].shape)
    return {
        "logits": dlogits,
        "l2.kernel": h.T @ dlogits,  # (in, out): Flax's layout
        "l2.bias": dlogits if "db_unsummed" in MISTAKES else dlogits.sum(0),
        "h": dh,
        "hpreact": dhpreact,
        "l1.kernel": flat.T @ dhpreact,
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


NAMES = {  # JAX name -> torch name; .T: nn.Linear stores (out, in), Flax's kernel (in, out)
    "C": "C",
    "l1.kernel": "l1.weight.T",
    "l1.bias": "l1.bias",
    "l2.kernel": "l2.weight.T",
    "l2.bias": "l2.bias",
}
torch_forward = torch_module_forward(_torch_mlp, NAMES, _torch_loss)
