"""Forwards written with Flax (nnx) and Equinox modules that jit inside (issue 24): their taps
work under ``nnx.jit`` / ``eqx.filter_jit`` and equal the un-jitted forward's. Needs the
``modules`` extra (flax, equinox), which CI installs, so these never skip there."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxninja
from jaxninja.errors import ModelError
from jaxninja.gradcheck import modules
from tests.gradcheck.test_taps import _within_jit_bound
from tests.helpers import ROOT


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


# ----------------------------------------------------------------------------- module models

EXAMPLES = ROOT / "examples" / "models"


@pytest.mark.parametrize(
    ("lib", "file"),
    [("equinox", "equinox_mlp.py"), ("flax", "flax_mlp.py"), ("flax", "flax_linen_mlp.py")],
)
def test_module_models_pass_against_jax_torch_and_fd(lib, file):
    """An Equinox / Flax nnx module and a loss, a torch nn.Module reference (Flax's through a
    transposing name map, its taps inside nnx.jit): every row, intermediates included."""
    pytest.importorskip(lib)
    pytest.importorskip("torch")
    result = jaxninja.cross_check_model(EXAMPLES / file, against=("jax", "torch", "fd"))
    names = ["logits", "h", "hpreact", "emb", "C"]
    for against in ("jax", "torch", "fd"):
        rows = [r for r in result.rows if r.against == against]
        assert len(rows) == 9 and all(r.ok for r in rows), against
        assert set(names) < {r.name for r in rows}


@pytest.mark.parametrize(
    ("lib", "file", "env", "row", "diagnosis"),
    [
        ("equinox", "equinox_mlp.py", "EQX_MISTAKES=dW_transposed", "l2.weight", "transposed"),
        ("flax", "flax_mlp.py", "FLAX_MISTAKES=db_unsummed", "l2.bias", "not summed over axis 0"),
        ("flax", "flax_linen_mlp.py", "LINEN_MISTAKES=dh_doubled", "h", "constant factor 2"),
    ],
)
def test_module_models_planted_mistakes(lib, file, env, row, diagnosis, monkeypatch):
    pytest.importorskip(lib)
    monkeypatch.setenv(*env.split("="))
    result = jaxninja.cross_check_model(EXAMPLES / file, against=("jax",))
    bad = [r for r in result.rows if not r.ok]
    assert bad[0].name == row and diagnosis in bad[0].diagnosis  # the first failing row
    if file == "flax_linen_mlp.py":  # a doubled dh is inherited by every row below it
        assert [r.name for r in bad] == ["h", "hpreact", "l1.kernel", "l1.bias", "emb", "C"]
        assert all(r.verdict == "mistake" for r in bad)  # measured errors: explained
    else:  # a wrong shape: its reason, nothing to explain
        assert len(bad) == 1


def test_linen_perturb_is_a_row_named_by_its_module_path():
    """Flax linen's own way to mark an intermediate, ``self.perturb``, is the check's tap while
    the check runs (a submodule's named ``block.name``), bit for bit the rows a ``tap`` gives,
    and Flax's own method again afterwards."""
    linen = pytest.importorskip("flax.linen")
    original = linen.Module.perturb

    class Block(linen.Module):
        mark: str

        @linen.compact
        def __call__(self, x):
            h = linen.Dense(3, name="d")(x)
            h = self.perturb("h", h) if self.mark == "perturb" else modules.tap("block.h", h)
            return jnp.tanh(h)

    class Net(linen.Module):
        mark: str

        @linen.compact
        def __call__(self, x):
            return Block(self.mark, name="block")(x).sum()

    def loss(call, x):
        return call(x) ** 2

    rows = {}
    for mark in ("perturb", "tap"):
        init, forward = modules.linen_model(Net(mark), loss, lambda key: (_batch(),))
        params = init(jax.random.key(0))
        rows[mark] = jaxninja.intermediate_grads(forward, params, _batch())
    assert list(rows["perturb"][0]) == ["block.h"]
    _same(rows["perturb"][1], rows["tap"][1])
    _same(rows["perturb"][0], rows["tap"][0])
    assert linen.Module.perturb is original


def test_tap_is_the_identity_outside_a_check_and_the_checks_tap_inside():
    x = jnp.ones(3)
    assert modules.tap("h", x) is x
    seen = []
    with modules.tapping(lambda name, v: seen.append(name) or v * 2):
        assert float(modules.tap("h", x)[0]) == 2.0
    assert seen == ["h"] and modules.tap("h", x) is x


def test_an_unmapped_torch_parameter_is_refused(tmp_path):
    pytest.importorskip("equinox")
    pytest.importorskip("torch")
    text = (EXAMPLES / "equinox_mlp.py").read_text(encoding="utf-8")
    text = text.replace('("C", "l1.weight", "l1.bias", "l2.weight", "l2.bias")', '("C",)')
    path = tmp_path / "model.py"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match="torch module parameters not mapped: l1.bias") as err:
        jaxninja.cross_check_model(path)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- part 5's classes

PART5 = EXAMPLES / "part5_torch_wavenet.py"


def _part5_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("part5_example", PART5)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_part5_classes_are_a_torch_reference(names_txt):
    """Part 5's WaveNet against part 5's own plain classes (not nn.Modules): every parameter
    and every layer's ``.out`` is a row, within the torch bound."""
    torch = pytest.importorskip("torch")
    assert not isinstance(_part5_module()._part5_network(), torch.nn.Module)
    result = jaxninja.cross_check_model(PART5, against=("jax", "torch"))
    torch_rows = [r for r in result.rows if r.against == "torch"]
    assert len(torch_rows) == 26 and all(r.ok for r in torch_rows), [
        (r.name, r.eps_scale) for r in torch_rows if not r.ok
    ]
    names = {r.name for r in torch_rows}
    assert {"emb", "l1.flat", "l1.hprebn", "l1.hpreact", "l1.h", "logits"} <= names
    assert {"C", "l1.W", "l1.bngain", "l1.bnbias", "out.W", "out.b"} <= names
    assert result.ok


def test_part5_planted_bessel_mistake_fails_where_it_starts(names_txt, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("PART5_MISTAKES", "no_bessel")
    result = jaxninja.cross_check_model(PART5, against=("jax", "torch"))
    for against in ("jax", "torch"):
        bad = [r for r in result.rows if r.against == against and not r.ok]
        assert bad[0].name == "l3.hprebn", against  # the first row the 1/n reaches
        assert all(r.verdict == "mistake" for r in bad)


def test_an_unmapped_part5_parameter_is_refused(names_txt):
    pytest.importorskip("torch")
    from jaxninja.models.protocol import load_model

    example = _part5_module()
    names = {k: v for k, v in example.NAMES.items() if k != "out.b"}
    torch_forward = modules.part5_torch_forward(
        example._part5_network, names, example.OUTS, example._torch_loss
    )
    model = load_model(PART5)._replace(torch_forward=torch_forward)
    with pytest.raises(ModelError, match="part 5 parameters not mapped: layers.13.bias") as err:
        jaxninja.cross_check_model(model, against=("jax", "torch"))
    assert "\n" not in str(err.value)
