"""makemore part 5's WaveNet checked against part 5's own torch classes: the lecture's plain
``Embedding``, ``FlattenConsecutive``, ``Linear``, ``BatchNorm1d``, ``Tanh`` and ``Sequential``
(each keeps its last output as ``.out`` and lists its tensors in ``parameters()``; not
``nn.Module``s), written here from their description, as the torch reference::

    jaxninja check --model examples/models/part5_torch_wavenet.py
    PART5_MISTAKES=no_bessel jaxninja check --model examples/models/part5_torch_wavenet.py  # fails

The JAX side is the WaveNet of ``wavenet.py`` (its parameters, sizes and batches), tapped at the
layers' outputs only, the values part 5's classes keep as ``.out`` (``l1.hprebn`` is the first
Linear's, ``l1.hpreact`` its BatchNorm's), with a manual backward that takes BatchNorm in one
step (Exercise 3's formula, over dims (0, 1) for (B, T, H)). The map ties each JAX parameter to
its attribute on the network (part 5's Linear stores (fan_in, fan_out), as JAX does: no
transpose) and each row to its layer.
"""

import importlib.util
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxninja.gradcheck.modules import part5_torch_forward

_spec = importlib.util.spec_from_file_location("_wavenet", Path(__file__).with_name("wavenet.py"))
_wavenet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_wavenet)

init, batch = _wavenet.init, _wavenet.batch  # the check WaveNet's parameters and batches
LAYERS, BN_EPS = _wavenet.LAYERS, _wavenet.BN_EPS
MISTAKES = set(filter(None, os.environ.get("PART5_MISTAKES", "").split(",")))


def forward(params, batch, tap):
    """The WaveNet's loss, each layer's output tapped under its row name."""
    x, y = batch
    h = tap("emb", params["C"][x])
    for name in LAYERS:
        p = params[name]
        flat = tap(f"{name}.flat", _wavenet._flatten(h))
        hprebn = tap(f"{name}.hprebn", flat @ p["W"])
        axes = _wavenet._axes(hprebn)
        n = math.prod(hprebn.shape[a] for a in axes)
        bndiff = hprebn - 1 / n * hprebn.sum(axes, keepdims=True)
        bnvar = 1 / (n - 1) * (bndiff**2).sum(axes, keepdims=True)  # Bessel, as torch.var
        bnraw = bndiff * (bnvar + BN_EPS) ** -0.5
        hpreact = tap(f"{name}.hpreact", p["bngain"] * bnraw + p["bnbias"])
        h = tap(f"{name}.h", jnp.tanh(hpreact))
    logits = tap("logits", h @ params["out"]["W"] + params["out"]["b"])
    logprobs = jax.nn.log_softmax(logits, axis=1)
    return -jnp.take_along_axis(logprobs, y[:, None], axis=1).mean()


def backward(params, batch, acts):
    """Every gradient by hand from the layers' outputs; BatchNorm in one step."""
    x, y = batch
    g = {}
    probs = jax.nn.softmax(acts["logits"], axis=1)
    dlogits = (probs - jax.nn.one_hot(y, probs.shape[1], dtype=probs.dtype)) / x.shape[0]
    g["logits"] = dlogits
    g["out.W"] = acts["l3.h"].T @ dlogits
    g["out.b"] = dlogits.sum(0)
    dh = dlogits @ params["out"]["W"].T
    for name in reversed(LAYERS):
        p, hprebn = params[name], acts[f"{name}.hprebn"]
        g[f"{name}.h"] = dh
        dhpreact = (1.0 - acts[f"{name}.h"] ** 2) * dh
        g[f"{name}.hpreact"] = dhpreact
        axes = _wavenet._axes(hprebn)
        n = math.prod(hprebn.shape[a] for a in axes)
        var_inv = (hprebn.var(axes, ddof=1, keepdims=True) + BN_EPS) ** -0.5
        bnraw = (hprebn - hprebn.mean(axes, keepdims=True)) * var_inv
        g[f"{name}.bngain"] = (bnraw * dhpreact).sum(axes)
        g[f"{name}.bnbias"] = dhpreact.sum(axes)
        bessel = n if "no_bessel" in MISTAKES else n - 1
        dhprebn = (p["bngain"] * var_inv / n) * (
            n * dhpreact
            - dhpreact.sum(axes, keepdims=True)
            - n / bessel * bnraw * (dhpreact * bnraw).sum(axes, keepdims=True)
        )
        g[f"{name}.hprebn"] = dhprebn
        flat = acts[f"{name}.flat"]
        g[f"{name}.W"] = flat.reshape(-1, flat.shape[-1]).T @ dhprebn.reshape(-1, p["W"].shape[1])
        dflat = dhprebn @ p["W"].T
        g[f"{name}.flat"] = dflat
        prev = acts["emb"] if name == "l1" else acts[f"l{int(name[1]) - 1}.h"]
        dh = dflat.reshape(prev.shape)
    g["emb"] = dh
    g["C"] = jnp.zeros_like(params["C"]).at[x].add(dh)
    return g


# ---------------------------------------------------------------- part 5's classes, in torch


def _part5_network():
    """The WaveNet as part 5 builds it from its own classes (sizes as the JAX side's; the
    initial values do not matter: the check sets the JAX parameters as the attributes)."""
    import torch

    class Embedding:
        def __init__(self, num, dim):
            self.weight = torch.randn((num, dim))

        def __call__(self, ix):
            self.out = self.weight[ix]
            return self.out

        def parameters(self):
            return [self.weight]

    class FlattenConsecutive:
        def __init__(self, n):
            self.n = n

        def __call__(self, x):
            b, t, c = x.shape
            x = x.view(b, t // self.n, c * self.n)
            self.out = x.squeeze(1) if x.shape[1] == 1 else x
            return self.out

        def parameters(self):
            return []

    class Linear:
        def __init__(self, fan_in, fan_out, bias=True):
            self.weight = torch.randn((fan_in, fan_out)) / fan_in**0.5
            self.bias = torch.zeros(fan_out) if bias else None

        def __call__(self, x):
            self.out = x @ self.weight
            if self.bias is not None:
                self.out = self.out + self.bias
            return self.out

        def parameters(self):
            return [self.weight] + ([] if self.bias is None else [self.bias])

    class BatchNorm1d:
        def __init__(self, dim, eps=BN_EPS, momentum=0.1):
            self.eps, self.momentum, self.training = eps, momentum, True
            self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
            self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)

        def __call__(self, x):
            if self.training:
                dims = 0 if x.ndim == 2 else (0, 1)
                mean, var = x.mean(dims, keepdim=True), x.var(dims, keepdim=True)
            else:
                mean, var = self.running_mean, self.running_var
            self.out = self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta
            if self.training:
                with torch.no_grad():
                    m = self.momentum
                    self.running_mean = (1 - m) * self.running_mean + m * mean.squeeze()
                    self.running_var = (1 - m) * self.running_var + m * var.squeeze()
            return self.out

        def parameters(self):
            return [self.gamma, self.beta]

    class Tanh:
        def __call__(self, x):
            self.out = torch.tanh(x)
            return self.out

        def parameters(self):
            return []

    class Sequential:
        def __init__(self, layers):
            self.layers = layers

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            self.out = x
            return self.out

        def parameters(self):
            return [p for layer in self.layers for p in layer.parameters()]

    e, h = _wavenet.N_EMBD, _wavenet.N_HIDDEN
    layers = [Embedding(27, e)]
    for fan_in in (2 * e, 2 * h, 2 * h):
        layers += [FlattenConsecutive(2), Linear(fan_in, h, bias=False), BatchNorm1d(h), Tanh()]
    return Sequential([*layers, Linear(h, 27)])


def _names_and_outs():
    """JAX parameter -> attribute path, and row -> layer path: layer 0 is the Embedding, then
    4 layers per block (Flatten, Linear, BatchNorm1d, Tanh), then the output Linear."""
    names, outs = {"C": "layers.0.weight"}, {"emb": "layers.0"}
    for i, name in enumerate(LAYERS):
        first = 1 + 4 * i
        names |= {
            f"{name}.W": f"layers.{first + 1}.weight",
            f"{name}.bngain": f"layers.{first + 2}.gamma",
            f"{name}.bnbias": f"layers.{first + 2}.beta",
        }
        for k, row in enumerate(("flat", "hprebn", "hpreact", "h")):
            outs[f"{name}.{row}"] = f"layers.{first + k}"
    last = 1 + 4 * len(LAYERS)
    names |= {"out.W": f"layers.{last}.weight", "out.b": f"layers.{last}.bias"}
    outs["logits"] = f"layers.{last}"
    return names, outs


def _torch_loss(net, batch):
    import torch.nn.functional as F

    x, y = batch
    return F.cross_entropy(net(x), y)


NAMES, OUTS = _names_and_outs()
torch_forward = part5_torch_forward(_part5_network, NAMES, OUTS, _torch_loss)
