"""The generated kernels against autodiff: ``jax.vjp`` of each layer's forward, eager and jit,
float32 and float64, batch sizes 2 to 256; and the whole model's seven gradients.

Tolerances are ``8 * eps * scale``, with eps the dtype's machine epsilon and scale the size of
the terms the kernel adds up (BatchNorm's is max |bngain * bnvar_inv * dhpreact|, as its
closed form is that times a combination of O(1) terms). For n < 8 the bound is looser,
``8 * kappa * eps * scale``: there the true BatchNorm gradient nearly vanishes (at n = 2 bnraw
is +-1/sqrt(2) whatever hprebn is) and is a difference of terms that cancel, so the forward's
own rounding of the batch mean (eps * |hprebn|, in bnraw and bnvar_inv, and just as much in
jax.vjp's result) is no longer small next to it; kappa = max over columns of
max |hprebn| / max |bndiff| >= 1 measures that (measured: errors <= 1.1 kappa for n = 2..7).

The default run covers n = 2 and 32 for the two lecture kernels and n = 32 for the rest; the
full grid n in {2, 3, 8, 32, 256} is marked slow (CI runs it): each case compiles new shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja.lecture import generated, model
from jaxninja.lecture.model import BN_EPS

SIZES = (2, 3, 8, 32, 256)
H, V, BLOCK, EMBED = 64, 27, 3, 10


class Case(NamedTuple):
    """A kernel, its inputs, and for each output the autodiff reference and the scale."""

    kernel: Callable
    args: tuple
    static: tuple[int, ...]  # static argument positions for jax.jit
    reference: tuple[jax.Array, ...]
    scales: tuple[float, ...]
    kappa: float = 1.0  # conditioning of the forward's inputs, used for n < 8


def bound(n: int, case: Case) -> float:
    """K in K * eps * scale (see the module docstring)."""
    return 8.0 if n >= 8 else 8.0 * case.kappa


def vjp_of(forward: Callable, primals: tuple, cotangent) -> tuple:
    """jax.vjp of ``forward`` at ``primals``, compiled once rather than op by op."""
    return jax.jit(lambda p, c: jax.vjp(forward, *p)[1](c))(primals, cotangent)


def _draw(rng: np.random.Generator, dtype, *shape, scale=1.0, shift=0.0) -> jax.Array:
    return jnp.asarray(rng.normal(size=shape) * scale + shift, dtype=dtype)


def _amax(x) -> float:
    return float(jnp.max(jnp.abs(x)))


def batchnorm_case(n: int, dtype, rng: np.random.Generator) -> Case:
    """model.batchnorm_fused (Bessel variance, eps inside the sqrt) vs batchnorm_backward."""
    hprebn = _draw(rng, dtype, n, H, scale=2.0, shift=0.5)
    bngain = _draw(rng, dtype, 1, H, scale=0.1, shift=1.0)
    bnbias = _draw(rng, dtype, 1, H, scale=0.1)
    dhpreact = _draw(rng, dtype, n, H, scale=1.0 / n)
    dhprebn, dbngain, dbnbias = vjp_of(model.batchnorm_fused, (hprebn, bngain, bnbias), dhpreact)
    # the kernel's inputs, as the forward computes them (fused.py)
    bndiff = hprebn - hprebn.mean(0, keepdims=True)
    bnvar_inv = ((bndiff**2).sum(0, keepdims=True) / (n - 1) + BN_EPS) ** -0.5
    bnraw = bndiff * bnvar_inv
    scales = (
        _amax(bngain * bnvar_inv * dhpreact),  # the closed form's prefactor times dhpreact
        _amax(jnp.sum(jnp.abs(bnraw * dhpreact), axis=0)),  # a sum of n terms
        _amax(jnp.sum(jnp.abs(dhpreact), axis=0)),
    )
    kappa = _amax(jnp.max(jnp.abs(hprebn), 0) / jnp.max(jnp.abs(bndiff), 0))
    return Case(
        generated.batchnorm_backward,
        (dhpreact, bnraw, bnvar_inv, bngain),
        (),
        (dhprebn, dbngain, dbnbias),
        scales,
        kappa,
    )


def cross_entropy_case(n: int, dtype, rng: np.random.Generator) -> Case:
    """model.cross_entropy (via log_softmax) vs cross_entropy_backward."""
    logits = _draw(rng, dtype, n, V, scale=3.0)
    y = jnp.asarray(rng.integers(0, V, size=n))
    (dlogits,) = vjp_of(lambda lg: model.cross_entropy(lg, y), (logits,), jnp.ones((), dtype))
    return Case(generated.cross_entropy_backward, (logits, y), (), (dlogits,), (1.0 / n,))


def cross_entropy_logprobs_case(n: int, dtype, rng: np.random.Generator) -> Case:
    """The same dlogits from the log-probabilities the training step's loss computed."""
    logits = _draw(rng, dtype, n, V, scale=3.0)
    y = jnp.asarray(rng.integers(0, V, size=n))
    (dlogits,) = vjp_of(lambda lg: model.cross_entropy(lg, y), (logits,), jnp.ones((), dtype))
    logprobs = jax.nn.log_softmax(logits, axis=1)
    return Case(generated.cross_entropy_logprobs_backward, (logprobs, y), (), (dlogits,), (1 / n,))


def tanh_case(n: int, dtype, rng: np.random.Generator) -> Case:
    hpreact = _draw(rng, dtype, n, H, scale=2.0)
    dh = _draw(rng, dtype, n, H)
    (dhpreact,) = vjp_of(jnp.tanh, (hpreact,), dh)
    return Case(generated.tanh_backward, (dh, jnp.tanh(hpreact)), (), (dhpreact,), (_amax(dh),))


def linear_case(n: int, dtype, rng: np.random.Generator) -> Case:
    x, W, b = _draw(rng, dtype, n, H), _draw(rng, dtype, H, V), _draw(rng, dtype, V)
    dout = _draw(rng, dtype, n, V)
    dx, dW, db = vjp_of(lambda x, W, b: x @ W + b, (x, W, b), dout)
    scales = (  # each entry is a dot product: its scale is the sum of |terms|
        _amax(jnp.abs(dout) @ jnp.abs(W).T),
        _amax(jnp.abs(x).T @ jnp.abs(dout)),
        _amax(jnp.sum(jnp.abs(dout), axis=0)),
    )
    return Case(generated.linear_backward, (dout, x, W), (), (dx, dW, db), scales)


def embedding_case(n: int, dtype, rng: np.random.Generator) -> Case:
    C = _draw(rng, dtype, V, EMBED)
    xb = jnp.asarray(rng.integers(0, V, size=(n, BLOCK)))
    demb = _draw(rng, dtype, n, BLOCK, EMBED)
    (dC,) = vjp_of(lambda C: C[xb], (C,), demb)
    scale = _amax(jnp.zeros_like(C).at[xb].add(jnp.abs(demb)))
    return Case(generated.embedding_backward, (demb, xb, V), (2,), (dC,), (scale,))


def layernorm_forward(x, lngain, lnbias):
    """LayerNorm over each row, biased variance, eps inside the square root (as torch)."""
    lndiff = x - x.mean(1, keepdims=True)
    lnvar_inv = jax.lax.rsqrt((lndiff**2).mean(1, keepdims=True) + BN_EPS)
    return lngain * lndiff * lnvar_inv + lnbias


def layernorm_case(n: int, dtype, rng: np.random.Generator) -> Case:
    x = _draw(rng, dtype, n, H, scale=2.0, shift=0.5)
    lngain = _draw(rng, dtype, 1, H, scale=0.1, shift=1.0)
    lnbias = _draw(rng, dtype, 1, H, scale=0.1)
    dout = _draw(rng, dtype, n, H)
    dx, dlngain, dlnbias = vjp_of(layernorm_forward, (x, lngain, lnbias), dout)
    lndiff = x - x.mean(1, keepdims=True)
    lnvar_inv = ((lndiff**2).mean(1, keepdims=True) + BN_EPS) ** -0.5
    lnraw = lndiff * lnvar_inv
    scales = (
        # |lnraw| reaches sqrt(H): the row sum of dlnraw * lnraw is that big per unit of scale
        _amax(lngain * lnvar_inv * dout) * H**0.5,
        _amax(jnp.sum(jnp.abs(lnraw * dout), axis=0)),
        _amax(jnp.sum(jnp.abs(dout), axis=0)),
    )
    return Case(
        generated.layernorm_backward,
        (dout, lnraw, lnvar_inv[:, 0], lngain),  # the kernel takes lnvar_inv (n,)
        (),
        (dx, dlngain, dlnbias),
        scales,
    )


def softmax_case(n: int, dtype, rng: np.random.Generator) -> Case:
    logits, dprobs = _draw(rng, dtype, n, V, scale=3.0), _draw(rng, dtype, n, V)
    probs = jax.nn.softmax(logits, axis=1)
    reference = vjp_of(lambda lg: jax.nn.softmax(lg, axis=1), (logits,), dprobs)
    return Case(generated.softmax_backward, (dprobs, probs), (), reference, (_amax(dprobs),))


def log_softmax_case(n: int, dtype, rng: np.random.Generator) -> Case:
    logits, dlogprobs = _draw(rng, dtype, n, V, scale=3.0), _draw(rng, dtype, n, V)
    logprobs = jax.nn.log_softmax(logits, axis=1)
    reference = vjp_of(lambda lg: jax.nn.log_softmax(lg, axis=1), (logits,), dlogprobs)
    scale = _amax(jnp.sum(jnp.abs(dlogprobs), axis=1))  # probs times a row sum
    return Case(generated.log_softmax_backward, (dlogprobs, logprobs), (), reference, (scale,))


CASES = {
    "cross_entropy": cross_entropy_case,
    "batchnorm": batchnorm_case,
    "tanh": tanh_case,
    "linear": linear_case,
    "embedding": embedding_case,
    "layernorm": layernorm_case,
    "softmax": softmax_case,
    "log_softmax": log_softmax_case,
    "cross_entropy_logprobs": cross_entropy_logprobs_case,
}


def errors_in_eps_scale(got, case: Case, dtype) -> list[float]:
    """Each output's max |got - reference| in units of eps * scale."""
    eps = float(jnp.finfo(dtype).eps)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(case.reference)
    out = []
    for mine, ref, scale in zip(got, case.reference, case.scales, strict=True):
        assert mine.shape == ref.shape and mine.dtype == ref.dtype, (mine.shape, ref.shape)
        out.append(_amax(mine - ref) / (eps * scale))
    return out


def _grid() -> list:
    """Every (kernel, dtype, n); the default run keeps a few, the rest are slow."""
    quick = {(name, 32) for name in CASES} | {("cross_entropy", 2), ("batchnorm", 2)}
    return [
        pytest.param(
            name,
            dtype,
            n,
            id=f"{name}-{dtype}-{n}",
            marks=() if (name, n) in quick else pytest.mark.slow,
        )
        for name in CASES
        for dtype in ("float32", "float64")
        for n in SIZES
    ]


@pytest.mark.parametrize(("name", "dtype", "n"), _grid())
def test_kernel_matches_vjp(name, dtype, n, x64):
    """Eager and jitted kernels within K eps·scale of jax.vjp of the forward."""
    dtype = jnp.dtype(dtype)
    case = CASES[name](n, dtype, np.random.default_rng([n, len(name)]))
    eager = errors_in_eps_scale(case.kernel(*case.args), case, dtype)
    jitted = errors_in_eps_scale(
        jax.jit(case.kernel, static_argnums=case.static)(*case.args), case, dtype
    )
    assert max(eager + jitted) <= bound(n, case), (eager, jitted, case.kappa)


def test_wrong_kernel_is_caught():
    """Teeth: the biased-variance BatchNorm formula (n instead of n - 1) fails the bound."""
    case = batchnorm_case(32, jnp.float32, np.random.default_rng(0))
    dhpreact, bnraw, bnvar_inv, bngain = case.args
    n = dhpreact.shape[0]
    dbnbias = dhpreact.sum(0, keepdims=True)
    dbngain = (bnraw * dhpreact).sum(0, keepdims=True)
    biased = bngain * bnvar_inv / n * (n * dhpreact - dbnbias - bnraw * dbngain)
    assert errors_in_eps_scale((biased, dbngain, dbnbias), case, jnp.float32)[0] > 1000


def test_jit_takes_n_from_the_shape():
    """One jitted kernel serves every batch size: n is read from the static shape."""
    kernel = jax.jit(generated.batchnorm_backward)
    for n in (4, 9):
        case = batchnorm_case(n, jnp.float32, np.random.default_rng(n))
        assert max(errors_in_eps_scale(kernel(*case.args), case, jnp.float32)) <= bound(n, case)


def model_batch(rng: np.random.Generator, dtype, n: int = 32):
    """Parameters with the notebook's scales (numpy draws: eager jax.random compiles slowly),
    biases non-zero so a wrong backward cannot hide, and a batch of contexts and targets."""
    fan_in = EMBED * BLOCK
    params = model.Params(
        C=_draw(rng, dtype, V, EMBED),
        W1=_draw(rng, dtype, fan_in, H, scale=(5 / 3) / fan_in**0.5),
        b1=_draw(rng, dtype, H, scale=0.1),
        W2=_draw(rng, dtype, H, V, scale=0.1),
        b2=_draw(rng, dtype, V, scale=0.1),
        bngain=_draw(rng, dtype, 1, H, scale=0.1, shift=1.0),
        bnbias=_draw(rng, dtype, 1, H, scale=0.1),
    )
    xb = jnp.asarray(rng.integers(0, V, size=(n, BLOCK)))
    yb = jnp.asarray(rng.integers(0, V, size=n))
    return params, xb, yb


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_model_gradients_match_jax_grad(dtype, x64):
    """All 7 parameter gradients of fused.loss_and_grads (generated kernels only) vs jax.grad
    of model.loss_fused, within 16 eps·max|grad| per group: five kernels in a chain, each
    within 8 eps·scale, and a float32 matmul of 64 terms in between."""
    from jaxninja.lecture.fused import loss_and_grads

    dtype = jnp.dtype(dtype)
    eps = float(jnp.finfo(dtype).eps)
    step = jax.jit(loss_and_grads)
    reference = jax.jit(jax.value_and_grad(model.loss_fused))
    for seed in range(2):
        params, xb, yb = model_batch(np.random.default_rng(seed), dtype)
        loss, grads = step(params, xb, yb)
        ref_loss, ref = reference(params, xb, yb)
        assert abs(float(loss - ref_loss)) <= 8 * eps * abs(float(ref_loss))
        for name, mine, theirs in zip(model.Params._fields, grads, ref, strict=True):
            assert mine.shape == theirs.shape, name
            scale = _amax(theirs) if name != "b1" else _amax(grads.W1)  # db1 = 0 by symmetry
            assert _amax(mine - theirs) <= 16 * eps * scale, (name, _amax(mine - theirs))
