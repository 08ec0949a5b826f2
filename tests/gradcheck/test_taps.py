"""intermediate_grads (issue 13): bit for bit jax.grad through explicit inputs eagerly, within
32 eps·scale under jit, any pytree, float32 and float64; what it refuses, one line each."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxninja
from jaxninja import numerics
from jaxninja.errors import TapError
from jaxninja.gradcheck.compare import ZERO_BY_SYMMETRY, compare_rows
from jaxninja.gradcheck.taps import param_names, tapped_grads
from jaxninja.lecture.backward import lecture_forward
from jaxninja.lecture.model import init_params
from jaxninja.models.protocol import load_model
from tests.helpers import ROOT

WAVENET = ROOT / "examples" / "models" / "wavenet.py"


def lecture(dtype=jnp.float32, seed: int = 0):
    """The lecture's model at Exercise 1's sizes on a random batch (vocabulary 27)."""
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = init_params(kp, 27, 10, 64, 3, dtype)
    batch = (jax.random.randint(kx, (32, 3), 0, 27), jax.random.randint(ky, (32,), 0, 27))
    return lecture_forward, params, batch


@pytest.fixture(scope="module")
def wavenet(names_txt):
    model = load_model(WAVENET)
    kinit, kbatch = jax.random.split(jax.random.key(42))
    arrays = jax.tree.map(jnp.asarray, (model.init(kinit), model.batch(kbatch)))
    return model.forward, *arrays


def explicit_grad(forward, params, batch, name: str, value: jax.Array) -> jax.Array:
    """jax.grad with the tapped value ``name`` made an explicit input of the rest of forward."""

    def rest(x):
        return forward(params, batch, lambda n, v: x if n == name else v)

    return jax.grad(rest)(value)


def assert_bit_exact_vs_explicit(forward, params, batch) -> None:
    acts, grads = jaxninja.intermediate_grads(forward, params, batch)
    by_param = dict(zip(param_names(params), jax.tree.leaves(jax.grad(
        lambda p: forward(p, batch, lambda n, v: v))(params)), strict=True))  # fmt: skip
    assert set(grads) == set(acts) | set(by_param)
    for name, value in acts.items():
        want = explicit_grad(forward, params, batch, name, value)
        assert np.array_equal(grads[name], want), name
    for name, want in by_param.items():
        assert np.array_equal(grads[name], want), name


def test_lecture_bit_exact_vs_explicit_inputs_float32():
    assert_bit_exact_vs_explicit(*lecture())


@pytest.mark.slow  # the float64 programs are compiled for this test alone (~30 s)
def test_lecture_bit_exact_vs_explicit_inputs_float64(x64):
    assert_bit_exact_vs_explicit(*lecture(jnp.float64, seed=1))


def test_wavenet_bit_exact_vs_explicit_inputs(wavenet):
    assert_bit_exact_vs_explicit(*wavenet)


def test_acts_are_the_forwards_values_bit_for_bit():
    forward, params, batch = lecture()
    seen = {}

    def record(name, value):
        seen[name] = value
        return value

    loss = forward(params, batch, record)
    taps = tapped_grads(forward, params, batch)
    assert np.array_equal(taps.loss, loss) and list(taps.acts) == list(seen)
    assert all(np.array_equal(taps.acts[k], v) for k, v in seen.items())


def _within_jit_bound(eager: dict, jitted: dict, scale_rows: dict) -> None:
    rows = compare_rows(
        {k: np.asarray(v) for k, v in jitted.items()},
        {k: np.asarray(v) for k, v in eager.items()},
        "jit",
        numerics.JAX_JIT,  # XLA compiles the jitted pass as one program: sums reassociate
        scale_rows=scale_rows,
    )
    assert all(r.ok for r in rows), [(r.name, r.eps_scale) for r in rows if not r.ok]


@pytest.mark.parametrize(
    "dtype",
    # float64 under jit is also test_backward's (reference_grads is this function): slow here
    ["float32", pytest.param("float64", marks=pytest.mark.slow)],
)
def test_jit_within_32_eps_scale_lecture(dtype, request):
    if dtype == "float64":  # float32 keeps x64 off: the eager programs of the tests above
        request.getfixturevalue("x64")
    forward, params, batch = lecture(jnp.dtype(dtype))
    _, eager = jaxninja.intermediate_grads(forward, params, batch)
    _, jitted = jaxninja.intermediate_grads(forward, params, batch, jit=True)
    _within_jit_bound(eager, jitted, ZERO_BY_SYMMETRY)


def test_jit_within_32_eps_scale_wavenet(wavenet):
    _, eager = jaxninja.intermediate_grads(*wavenet)
    _, jitted = jaxninja.intermediate_grads(*wavenet, jit=True)
    _within_jit_bound(eager, jitted, {})


def test_callable_inside_an_outer_jit():
    forward, params, batch = lecture()
    _, eager = jaxninja.intermediate_grads(forward, params, batch)
    inner = jax.jit(lambda p, b: jaxninja.intermediate_grads(forward, p, b)[1])(params, batch)
    _within_jit_bound(eager, inner, ZERO_BY_SYMMETRY)


# ----------------------------------------------------------------------------- any pytree


def small_forward(params, batch, tap):
    x, ix = batch
    h = tap("h", jnp.tanh(x @ params["layers"][0]["W"] + params["layers"][1]["b"]))
    picked = tap("picked", h[ix])  # rows picked by integer indices
    tap("ix", ix)  # an integer value: kept in acts, no gradient
    return (picked**2).mean() * params["scale"][0]


def small_params():
    rng = np.random.default_rng(0)
    return {
        "layers": [{"W": rng.standard_normal((4, 3))}, {"b": rng.standard_normal(3)}],
        "scale": (np.float32(1.5), np.int32(7)),  # an integer leaf: skipped
    }


def test_nested_pytree_names_and_integer_values_skipped():
    params = jax.tree.map(lambda a: jnp.asarray(a), small_params())
    params = jax.tree.map(lambda a: a.astype(jnp.float32) if a.dtype.kind == "f" else a, params)
    batch = (jnp.ones((5, 4), jnp.float32), jnp.array([0, 2, 2]))
    taps = tapped_grads(small_forward, params, batch)
    assert list(taps.grads) == ["h", "picked", "layers.0.W", "layers.1.b", "scale.0"]
    assert taps.skipped == ("ix", "scale.1") and taps.acts["ix"].dtype.kind == "i"
    h = taps.acts["h"]
    # repeated index 2: picked's gradient scatters back into h with accumulation
    want_dh = jnp.zeros_like(h).at[jnp.array([0, 2, 2])].add(taps.grads["picked"])
    assert np.array_equal(taps.grads["h"], want_dh)


def test_param_names_of_a_bare_array_and_a_namedtuple():
    assert param_names(jnp.ones(3)) == ["params"]
    assert param_names(lecture()[1])[:2] == ["C", "W1"]


# ----------------------------------------------------------------------------- refusals


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("where", "body"),
    [
        ("scan", lambda x, tap: jax.lax.scan(lambda c, r: (c + tap("r", r).sum(), None),
                                             0.0, x)[0]),
        ("vmap", lambda x, tap: jax.vmap(lambda r: tap("r", r).sum())(x).sum()),
        ("cond", lambda x, tap: jax.lax.cond(x.sum() > 0, lambda v: tap("r", v).sum(),
                                             jnp.sum, x)),
        ("scan under jit", lambda x, tap: jax.jit(lambda v: jax.lax.scan(
            lambda c, r: (c + tap("r", r).sum(), None), 0.0, v)[0])(x)),
    ],
)  # fmt: skip
def test_tap_inside_a_transformation_is_refused(where, body):
    with pytest.raises(TapError) as err:
        tapped_grads(lambda p, b, tap: body(p * b, tap), jnp.ones((3, 2)), jnp.ones((3, 2)))
    assert "inside jax.lax.scan / vmap / cond" in _one_line(err), where


def _inner_jit_forward(params, batch, tap):
    """A forward whose layer is jitted inside it, tapping there (as a jitted module does)."""

    @jax.jit
    def layer(W, x):
        h = tap("h", x @ W)
        return tap("a", jnp.tanh(h))

    a = layer(params["W"], batch)
    return tap("out", (a**2).sum(1)).mean()


def _plain_forward(params, batch, tap):
    h = tap("h", batch @ params["W"])
    a = tap("a", jnp.tanh(h))
    return tap("out", (a**2).sum(1)).mean()


@pytest.mark.parametrize("jit", [False, True])
def test_taps_under_an_inner_jit_equal_eager_taps(jit):
    """A tap inside jax.jit was refused; its rows now equal the plain forward's: bit for bit
    eagerly (the inner jit is inlined), within the jit contract under jit=True."""
    rng = np.random.default_rng(0)
    params = {"W": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)}
    batch = jnp.asarray(rng.standard_normal((5, 4)), jnp.float32)
    acts, grads = jaxninja.intermediate_grads(_inner_jit_forward, params, batch, jit=jit)
    want_acts, want = jaxninja.intermediate_grads(_plain_forward, params, batch)
    assert list(grads) == ["h", "a", "out", "W"] and list(acts) == ["h", "a", "out"]
    if jit:
        _within_jit_bound(want, grads, {})
    else:
        for name in want:
            assert np.asarray(grads[name]).tobytes() == np.asarray(want[name]).tobytes(), name
            if name in acts:
                assert np.asarray(acts[name]).tobytes() == np.asarray(want_acts[name]).tobytes()


def test_name_tapped_twice_is_refused():
    def forward(p, b, tap):
        return tap("x", tap("x", p * b)).sum()

    with pytest.raises(TapError, match="called twice") as err:
        tapped_grads(forward, jnp.ones(3), jnp.ones(3))
    _one_line(err)


def test_bad_names_and_non_scalar_losses_are_refused():
    p, b = {"W": jnp.ones(3)}, jnp.ones(3)
    with pytest.raises(TapError, match="must be strings"):
        tapped_grads(lambda p, b, tap: tap(1, p["W"]).sum(), p, b)
    with pytest.raises(TapError, match="also a parameter's name"):
        tapped_grads(lambda p, b, tap: tap("W", p["W"]).sum(), p, b)
    with pytest.raises(TapError, match=r"scalar floating loss, got shape \(3,\)") as err:
        tapped_grads(lambda p, b, tap: p["W"] * b, p, b)
    _one_line(err)
    with pytest.raises(TapError, match="scalar floating loss, got str"):
        tapped_grads(lambda p, b, tap: "loss", p, b)
