"""benchmarks/wavenet_train.py's torch row trains the same network as the model file: part 5's
layers re-written in torch, given the same parameters, give the file's loss and, after one
training-mode pass, the file's eval logits with running statistics (so its speed is the speed
of the same work)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import wavenet_train as bench  # noqa: E402  (after the torch skip)

VOCAB = 27


@pytest.fixture(scope="module")
def setup(names_txt):
    """The file's part5 variant, the benchmark's torch network, and one batch of the data."""
    model = bench.load_wavenet().part5
    tmodel, tparams, _ = bench.torch_part5(torch, VOCAB, 24, 128, seed=0)
    x, y = (jnp.asarray(a) for a in model.batch(jax.random.key(5)))
    return model, tmodel, tparams, x, y


def as_jax(tparams) -> dict:
    """The torch parameters, in the layers' order, as the model file's parameter dict."""
    a = [jnp.asarray(p.detach().numpy()) for p in tparams]
    params = {"C": a[0], "out": {"W": a[10], "b": a[11]}}
    for i, name in enumerate(("l1", "l2", "l3")):
        params[name] = {"W": a[1 + 3 * i], "bngain": a[2 + 3 * i], "bnbias": a[3 + 3 * i]}
    return params


def test_the_torch_row_is_part5s_network_with_part5s_init(setup):
    _, _, tparams, _, _ = setup
    assert sum(p.numel() for p in tparams) == 76_579
    out_w = tparams[10].detach().numpy()
    # the output layer scaled by 0.1 on top of 1/sqrt(128): its std is ~0.1 * 0.088
    assert 0.5 * 0.1 / np.sqrt(128) < out_w.std() < 1.5 * 0.1 / np.sqrt(128)


def test_the_torch_row_computes_the_model_files_loss_and_eval_logits(setup):
    """Same parameters: the same training-mode loss, and after that one pass the same running
    statistics, seen through the eval logits. Tolerances: float32 through 4 matmuls and 3
    BatchNorms in two libraries (the project's torch bound is 64 eps·scale per gradient; here
    1e-5 relative on a loss ~3.3 and 1e-5 absolute on logits ~0.1)."""
    model, tmodel, tparams, x, y = setup
    params = as_jax(tparams)
    xt, yt = torch.tensor(np.array(x)).long(), torch.tensor(np.array(y)).long()
    with torch.no_grad():
        tloss = float(torch.nn.functional.cross_entropy(tmodel(xt), yt))
        tlogits = tmodel(xt, training=False).numpy()
    acts: dict = {}
    loss = model.forward(params, (x, y), lambda n, v: acts.setdefault(n, v))
    np.testing.assert_allclose(float(loss), tloss, rtol=1e-5)
    stats = model.stats_update(model.stats_init(params), acts)
    np.testing.assert_allclose(model.logits(params, stats, x), tlogits, atol=1e-5)
