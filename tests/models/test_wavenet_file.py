"""examples/models/wavenet.py as a trainable model file (issue 22): the ``part5`` variant's
parameter count and init, its manual backward against jax.grad within the contract, a jitted
step, part 5's running BatchNorm statistics, the eval logits, and a short lax.scan training run
with the file's own backward."""

from __future__ import annotations

import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxninja
from jaxninja import numerics
from jaxninja.gradcheck.taps import param_names
from jaxninja.lecture.step import chunk_indices
from jaxninja.models.protocol import recorded
from tests.helpers import ROOT

WAVENET = ROOT / "examples" / "models" / "wavenet.py"
VOCAB = 27  # names.txt's 26 letters and '.'


@pytest.fixture(scope="module")
def wavenet(names_txt):
    """The model file as a module (its variants are attributes, not only the top level)."""
    spec = importlib.util.spec_from_file_location("wavenet_under_test", WAVENET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.MISTAKES, "unset WAVENET_MISTAKES to run these tests"
    return module


@pytest.fixture(scope="module")
def part5(wavenet):
    """part5's parameters and one training batch (seeds fixed)."""
    model = wavenet.part5
    params = jax.tree.map(jnp.asarray, model.init(jax.random.key(0), VOCAB))
    batch = jax.tree.map(jnp.asarray, model.batch(jax.random.key(1)))
    return model, params, batch


def tapped(forward, params, batch):
    """``(loss, acts)``: the forward with a tap that records every intermediate (as a trainer
    runs it, also under jit)."""
    return recorded(forward, params, batch)


def manual_grads(model, params, batch):
    """``(loss, grads)``: the file's own backward, the gradients as a pytree like params."""
    loss, acts = tapped(model.forward, params, batch)
    g = model.backward(params, batch, acts)
    leaves = [g[name] for name in param_names(params)]
    return loss, jax.tree.unflatten(jax.tree.structure(params), leaves)


# ---------------------------------------------------------------- sizes and init


def test_part5_has_part5s_76579_parameters(part5):
    _, params, _ = part5
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 76_579
    assert params["C"].shape == (VOCAB, 24)
    assert [params[n]["W"].shape for n in ("l1", "l2", "l3")] == [(48, 128), (256, 128), (256, 128)]
    assert params["out"]["W"].shape == (128, VOCAB)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


def test_the_check_model_keeps_its_sizes_and_perturbed_gains(wavenet):
    params = wavenet.init(jax.random.key(42))  # what check --model calls
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 20_073  # README's check table
    assert params["C"].shape[1] == 10 and params["l1"]["W"].shape == (20, 64)
    assert not np.all(params["l1"]["bngain"] == 1)


def test_part5_init_is_part5s(part5, wavenet):
    """Kaiming randn / sqrt(fan_in), the output layer 0.1 of that with bias 0, gain 1, bias 0.
    Each std is checked within 6 standard errors of a sample std (1 / sqrt(2 n) relative): a
    wrong fan-in (48 vs 256) or a missing 0.1 is off by 2x or more."""
    model, params, _ = part5
    expected = {
        "C": (params["C"], 1.0),
        "l1.W": (params["l1"]["W"], 1 / math.sqrt(48)),
        "l2.W": (params["l2"]["W"], 1 / math.sqrt(256)),
        "l3.W": (params["l3"]["W"], 1 / math.sqrt(256)),
        "out.W": (params["out"]["W"], 0.1 / math.sqrt(128)),
    }
    for name, (w, std) in expected.items():
        w = np.asarray(w, np.float64)
        rel = 6 / math.sqrt(2 * w.size)
        assert abs(w.std() / std - 1) < rel, (name, w.std(), std)
        assert abs(w.mean()) < 6 * std / math.sqrt(w.size), name
    for name in ("l1", "l2", "l3"):
        assert np.all(params[name]["bngain"] == 1) and np.all(params[name]["bnbias"] == 0)
    assert np.all(params["out"]["b"] == 0)
    again = model.init(jax.random.key(0), VOCAB)
    other = model.init(jax.random.key(1), VOCAB)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, again, params)))
    assert not np.array_equal(other["l1"]["W"], again["l1"]["W"])
    assert model.init(jax.random.key(0), 30)["C"].shape == (30, 24)  # the trainer's vocabulary


def test_part5_train_defaults_are_part5s_schedule(wavenet):
    assert wavenet.part5.train_defaults == {
        "block_size": 8,
        "batch_size": 32,
        "steps": 200_000,
        "lr": 0.1,
        "lr_decay_step": 150_000,
        "lr_decay": 0.1,
    }
    assert wavenet.train_defaults["block_size"] == 8  # the bare file trains at 8 too


# ---------------------------------------------------------------- the backward


@pytest.fixture(scope="module")
def reference(part5):
    """``acts, grads``: part5's tapped values and jax.grad of each (eagerly, as check does)."""
    model, params, batch = part5
    return jaxninja.intermediate_grads(model.forward, params, batch)


def test_part5_backward_equals_jax_grad_within_the_contract(part5, reference):
    """Every parameter and every tapped intermediate: the manual gradient against jax.grad
    (intermediate_grads) eagerly, within check --model's bound (numerics.MODEL_JAX)."""
    model, params, batch = part5
    acts, want = reference
    manual = model.backward(params, batch, acts)
    assert set(param_names(params)) <= set(manual)
    for name, ref in want.items():
        _, err = numerics.eps_scale(manual[name], ref)
        assert err <= numerics.MODEL_JAX, (name, err)


@pytest.mark.parametrize(
    ("mistake", "broken"), [("dW_transposed", "l3.W"), ("bn_dim0", "l2.bngain"), ("dC_set", "C")]
)
def test_a_planted_mistake_breaks_part5s_gradients_too(wavenet, part5, reference, mistake, broken):
    """WAVENET_MISTAKES reaches the part5 variant's backward (it is the module's), so a
    trainer's gradient audit can be shown a real mistake at part 5's sizes. At 24/128 two of
    them come out with the wrong shape ((128, 256) for a (256, 128) W; (2, 128) for a gain
    summed over dim 0 only), which is as wrong as a wrong value."""
    model, params, batch = part5
    acts, want = reference
    wavenet.MISTAKES = {mistake}
    try:
        got = model.backward(params, batch, acts)[broken]
    finally:
        wavenet.MISTAKES = set()
    if got.shape == want[broken].shape:
        _, err = numerics.eps_scale(got, want[broken])
        assert err > numerics.MODEL_JAX, (mistake, broken, err)
    else:
        assert mistake in ("dW_transposed", "bn_dim0"), (mistake, got.shape)


# ---------------------------------------------------------------- running statistics, logits


def hand_batch_stats(params, x):
    """Each layer's batch mean and Bessel variance, in float64 numpy, part 5's layers by hand."""
    h = np.asarray(params["C"], np.float64)[np.asarray(x)]
    out = {}
    for name in ("l1", "l2", "l3"):
        b, t, c = h.shape
        flat = h.reshape(b, t // 2, 2 * c)
        flat = flat[:, 0, :] if t // 2 == 1 else flat
        hprebn = flat @ np.asarray(params[name]["W"], np.float64)
        axes = (0, 1) if hprebn.ndim == 3 else (0,)
        mean = hprebn.mean(axes, keepdims=True)
        var = hprebn.var(axes, keepdims=True, ddof=1)
        out[name] = (mean, var)
        g, beta = (np.asarray(params[name][k], np.float64) for k in ("bngain", "bnbias"))
        h = np.tanh(g * (hprebn - mean) / np.sqrt(var + 1e-5) + beta)
    return out


def test_stats_update_is_part5s_momentum_update(part5):
    """From non-trivial running statistics (not 0 and 1, so the momentum's both terms count):
    0.9 * run + 0.1 * (batch mean, Bessel variance), computed by hand in float64. rtol 1e-5:
    float32 sums of 128 / 64 / 32 terms against exact ones, and the variance's relative error
    is a few eps times the terms' count at most."""
    model, params, batch = part5
    stats0 = model.stats_init(params)
    assert {k: v["mean"].shape for k, v in stats0.items()} == {
        "l1": (1, 1, 128),
        "l2": (1, 1, 128),
        "l3": (1, 128),
    }
    assert all(np.all(s["mean"] == 0) and np.all(s["var"] == 1) for s in stats0.values())
    rng = np.random.default_rng(0)
    stats = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 2.0, a.shape), a.dtype), stats0)
    _, acts = tapped(model.forward, params, batch)
    new = jax.jit(model.stats_update)(stats, acts)
    for name, (mean, var) in hand_batch_stats(params, batch[0]).items():
        run = {k: np.asarray(v, np.float64) for k, v in stats[name].items()}
        assert new[name]["mean"].shape == mean.shape and new[name]["var"].dtype == jnp.float32
        np.testing.assert_allclose(new[name]["mean"], 0.9 * run["mean"] + 0.1 * mean, rtol=1e-5)
        np.testing.assert_allclose(new[name]["var"], 0.9 * run["var"] + 0.1 * var, rtol=1e-5)


def test_logits_with_the_batchs_own_statistics_are_the_forwards(part5):
    """logits() normalises with given statistics; given the batch's own (or None), it is the
    training forward's logits. atol 1e-5: logits of size ~1, the two compute 1/sqrt(var + eps)
    differently (a power vs a divide by sqrt), a few float32 eps apart."""
    model, params, batch = part5
    x = batch[0]
    _, acts = tapped(model.forward, params, batch)
    own = {n: {"mean": acts[f"{n}.bnmeani"], "var": acts[f"{n}.bnvar"]} for n in ("l1", "l2", "l3")}
    logits = jax.jit(model.logits)(params, own, x)
    assert logits.shape == (x.shape[0], VOCAB) and logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, acts["logits"], atol=1e-5)
    np.testing.assert_allclose(model.logits(params, None, x), acts["logits"], atol=1e-5)
    # with running statistics each row is its own: any split may be evaluated in pieces
    stats = model.stats_init(params)
    whole = model.logits(params, stats, x)
    np.testing.assert_allclose(model.logits(params, stats, x[:5]), whole[:5], atol=1e-6)


def test_a_context_that_is_not_8_long_is_one_line(part5):
    model, params, _ = part5
    with pytest.raises(ValueError, match=r"contexts of 8 characters.*shape \(4, 3\)") as info:
        model.logits(params, None, jnp.zeros((4, 3), jnp.int32))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- training with it


def test_a_short_scan_training_with_the_files_backward_lowers_the_loss(part5, names_txt):
    """300 SGD steps (batch 32, lr 0.1) in one jitted lax.scan with the file's backward and
    running statistics, as a trainer runs it: the validation loss with the running statistics
    falls from ~ln 27 = 3.30 (the 0.1-scaled output layer starts near uniform) to below 2.75
    (measured 2.43 at these seeds; a backward with a wrong sign or a stuck layer stays ~3.3)."""
    model, params, _ = part5
    ds = jaxninja.load_dataset(names_txt, 8)
    x, y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    xv, yv = jnp.asarray(ds.val.x[:4000]), jnp.asarray(ds.val.y[:4000])

    def step(carry, b):
        p, stats = carry
        loss, acts = tapped(model.forward, p, b)
        g = model.backward(p, b, acts)
        grads = jax.tree.unflatten(jax.tree.structure(p), [g[n] for n in param_names(p)])
        p = jax.tree.map(lambda w, d: w - 0.1 * d, p, grads)
        return (p, model.stats_update(stats, acts)), loss

    @jax.jit
    def train(p, stats):
        ix = chunk_indices(jax.random.key(3), jnp.arange(300), 32, x.shape[0])
        return jax.lax.scan(step, (p, stats), (x[ix], y[ix]))

    def val_loss(p, stats):
        logp = jax.nn.log_softmax(model.logits(p, stats, xv), axis=1)
        return float(-jnp.take_along_axis(logp, yv[:, None], axis=1).mean())

    stats = model.stats_init(params)
    before = val_loss(params, None)
    (trained, stats), losses = train(params, stats)
    after = val_loss(trained, stats)
    assert abs(before - math.log(VOCAB)) < 0.1
    print(f"val loss {before:.3f} -> {after:.3f}; train {losses[:50].mean():.3f} -> "
          f"{losses[-50:].mean():.3f}")  # fmt: skip
    assert after < 2.75, (before, after)
    assert float(losses[-50:].mean()) < float(losses[:50].mean()) - 0.3
