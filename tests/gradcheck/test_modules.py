"""Forwards written with Flax (nnx) and Equinox modules that jit inside (issue 24): their taps
work under ``nnx.jit`` / ``eqx.filter_jit`` and equal the un-jitted forward's. Needs the
``modules`` extra (flax, equinox), which CI installs, so these never skip there."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxninja
from tests.gradcheck.test_taps import _within_jit_bound


def _batch():
    return jnp.asarray(np.random.default_rng(1).standard_normal((6, 4)), jnp.float32)


def _same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        assert np.asarray(got[name]).tobytes() == np.asarray(want[name]).tobytes(), name


@pytest.mark.parametrize("jit", [False, True])
def test_taps_inside_nnx_jit(jit):
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def forward(state, x, tap, jitted=True):
        def body(m, x):
            h = tap("h", m(x))
            return tap("a", jnp.tanh(h))

        call = nnx.jit(body) if jitted else body
        return (call(nnx.merge(graphdef, state), x) ** 2).mean()

    acts, grads = jaxninja.intermediate_grads(forward, state, _batch(), jit=jit)
    plain = jaxninja.intermediate_grads(
        lambda s, x, tap: forward(s, x, tap, jitted=False), state, _batch()
    )
    assert list(acts) == ["h", "a"] and {"h", "a"} < set(grads)
    if jit:
        _within_jit_bound(plain[1], grads, {})
    else:
        _same(grads, plain[1])
        _same(acts, plain[0])


@pytest.mark.parametrize("jit", [False, True])
def test_taps_inside_eqx_filter_jit(jit):
    eqx = pytest.importorskip("equinox")
    model = eqx.nn.MLP(4, 2, 8, 1, key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def forward(params, x, tap, jitted=True):
        def body(m, x):
            h = tap("h", jax.vmap(m.layers[0])(x))
            a = tap("a", jnp.tanh(h))
            return jax.vmap(m.layers[1])(a)

        call = eqx.filter_jit(body) if jitted else body
        return (call(eqx.combine(params, static), x) ** 2).mean()

    acts, grads = jaxninja.intermediate_grads(forward, params, _batch(), jit=jit)
    plain = jaxninja.intermediate_grads(
        lambda p, x, tap: forward(p, x, tap, jitted=False), params, _batch()
    )
    assert list(acts) == ["h", "a"]
    assert "layers.0.weight" in grads  # parameters named by their module path
    if jit:
        _within_jit_bound(plain[1], grads, {})
    else:
        _same(grads, plain[1])
