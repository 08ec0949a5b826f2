"""The generated kernels against torch autograd on identical inputs (float32 and float64).

Each kernel gets exactly the arrays torch's forward saw or produced (h, probs, logprobs), and
its outputs must be within 8 eps·scale of torch's ``.grad``, scale being the size of the terms
summed (as in test_generated.py). n = 32: a batch where the bound is the plain 8 eps·scale.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja.lecture import generated
from jaxninja.lecture.model import BN_EPS

torch = pytest.importorskip("torch")
F = torch.nn.functional

N, H, V, BLOCK, EMBED = 32, 64, 27, 3, 10
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def leaf(rng: np.random.Generator, dtype, *shape, scale=1.0, shift=0.0):
    """A torch leaf tensor that requires grad, drawn with numpy."""
    x = torch.tensor(rng.normal(size=shape) * scale + shift, dtype=dtype)
    return x.requires_grad_(True)


def jx(t) -> jnp.ndarray:
    """The same numbers as a jax array (no copy semantics needed: values only)."""
    return jnp.asarray(t.detach().numpy())


def within(mine, theirs, scale: float, dtype) -> float:
    """max |mine - theirs| in units of eps·scale."""
    eps = float(torch.finfo(dtype).eps)
    mine = np.asarray(mine)
    theirs = theirs.detach().numpy()
    assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
    return float(np.max(np.abs(mine - theirs))) / (eps * scale)


def amax(x) -> float:
    return float(x.detach().abs().max())


@pytest.fixture(params=list(DTYPES))
def dtype(request, x64):
    return DTYPES[request.param]


def test_cross_entropy(dtype):
    rng = np.random.default_rng(1)
    logits = leaf(rng, dtype, N, V, scale=3.0)
    y = torch.tensor(rng.integers(0, V, size=N))
    F.cross_entropy(logits, y).backward()
    mine = generated.cross_entropy_backward(jx(logits), jnp.asarray(y.numpy()))
    assert within(mine, logits.grad, 1.0 / N, dtype) <= 8


def test_batchnorm(dtype):
    rng = np.random.default_rng(2)
    hprebn = leaf(rng, dtype, N, H, scale=2.0, shift=0.5)
    bngain = leaf(rng, dtype, 1, H, scale=0.1, shift=1.0)
    bnbias = leaf(rng, dtype, 1, H, scale=0.1)
    dhpreact = torch.tensor(rng.normal(size=(N, H)) / N, dtype=dtype)
    bndiff = hprebn - hprebn.mean(0, keepdim=True)
    bnvar_inv = (hprebn.var(0, keepdim=True, unbiased=True) + BN_EPS) ** -0.5
    bnraw = bndiff * bnvar_inv
    (bngain * bnraw + bnbias).backward(dhpreact)
    mine = generated.batchnorm_backward(jx(dhpreact), jx(bnraw), jx(bnvar_inv), jx(bngain))
    scales = (
        amax(bngain * bnvar_inv * dhpreact),
        amax((bnraw * dhpreact).abs().sum(0)),
        amax(dhpreact.abs().sum(0)),
    )
    for got, grad, scale in zip(mine, (hprebn.grad, bngain.grad, bnbias.grad), scales, strict=True):
        assert within(got, grad, scale, dtype) <= 8


def test_tanh(dtype):
    rng = np.random.default_rng(3)
    hpreact = leaf(rng, dtype, N, H, scale=2.0)
    dh = torch.tensor(rng.normal(size=(N, H)), dtype=dtype)
    h = torch.tanh(hpreact)
    h.backward(dh)
    assert within(generated.tanh_backward(jx(dh), jx(h)), hpreact.grad, amax(dh), dtype) <= 8


def test_linear(dtype):
    rng = np.random.default_rng(4)
    x, W, b = leaf(rng, dtype, N, H), leaf(rng, dtype, H, V), leaf(rng, dtype, V)
    dout = torch.tensor(rng.normal(size=(N, V)), dtype=dtype)
    (x @ W + b).backward(dout)
    dx, dW, db = generated.linear_backward(jx(dout), jx(x), jx(W))
    assert within(dx, x.grad, amax(dout.abs() @ W.abs().T), dtype) <= 8
    assert within(dW, W.grad, amax(x.abs().T @ dout.abs()), dtype) <= 8
    assert within(db, b.grad, amax(dout.abs().sum(0)), dtype) <= 8


def test_embedding(dtype):
    rng = np.random.default_rng(5)
    C = leaf(rng, dtype, V, EMBED)
    xb = torch.tensor(rng.integers(0, V, size=(N, BLOCK)))
    demb = torch.tensor(rng.normal(size=(N, BLOCK, EMBED)), dtype=dtype)
    C[xb].backward(demb)
    mine = generated.embedding_backward(jx(demb), jnp.asarray(xb.numpy()), V)
    scale = amax(torch.zeros_like(C).index_put((xb,), demb.abs(), accumulate=True))
    assert within(mine, C.grad, scale, dtype) <= 8


def test_layernorm(dtype):
    rng = np.random.default_rng(6)
    x = leaf(rng, dtype, N, H, scale=2.0, shift=0.5)
    lngain = leaf(rng, dtype, H, scale=0.1, shift=1.0)
    lnbias = leaf(rng, dtype, H, scale=0.1)
    dout = torch.tensor(rng.normal(size=(N, H)), dtype=dtype)
    F.layer_norm(x, (H,), lngain, lnbias, eps=BN_EPS).backward(dout)
    lndiff = x - x.mean(1, keepdim=True)
    lnvar_inv = (lndiff.pow(2).mean(1, keepdim=True) + BN_EPS) ** -0.5
    dx, dlngain, dlnbias = generated.layernorm_backward(
        jx(dout), jx(lndiff * lnvar_inv), jx(lnvar_inv[:, 0]), jx(lngain)[None, :]
    )
    # |lnraw| reaches sqrt(H), so the row sums are up to sqrt(H) times the prefactor's size
    assert within(dx, x.grad, amax(lngain * lnvar_inv * dout) * H**0.5, dtype) <= 8
    assert (
        within(dlngain[0], lngain.grad, amax((lndiff * lnvar_inv * dout).abs().sum(0)), dtype) <= 8
    )
    assert within(dlnbias[0], lnbias.grad, amax(dout.abs().sum(0)), dtype) <= 8


def test_softmax_and_log_softmax(dtype):
    rng = np.random.default_rng(7)
    logits = leaf(rng, dtype, N, V, scale=3.0)
    upstream = torch.tensor(rng.normal(size=(N, V)), dtype=dtype)
    probs = torch.softmax(logits, 1)
    probs.backward(upstream)
    mine = generated.softmax_backward(jx(upstream), jx(probs))
    assert within(mine, logits.grad, amax(upstream), dtype) <= 8
    logits.grad = None
    logprobs = torch.log_softmax(logits, 1)
    logprobs.backward(upstream)
    mine = generated.log_softmax_backward(jx(upstream), jx(logprobs))
    assert within(mine, logits.grad, amax(upstream.abs().sum(1)), dtype) <= 8
