"""Training the WaveNet for 1,000 steps with its hand-written backward, the generated backward
evaluated on every batch beside it: within the model contract (32 eps·scale) of the hand-written
gradients at every step, every row (issue 23's ``train --model --check-every 1`` criterion,
run here as one jitted scan: ``--check-every`` compares against jax.grad, not a second backward;
``test_train_generated.py`` trains the generated file through ``train --model``)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja import numerics
from jaxninja.backward import backward_source
from jaxninja.backward.write import compile_backward
from jaxninja.gradcheck.taps import param_names
from jaxninja.models.protocol import load_model, recorded

WAVENET = Path(__file__).resolve().parents[2] / "examples" / "models" / "wavenet.py"
STEPS, LR = 1_000, 0.05


def worst_per_step(model, generated, params, xs, ys):
    """Each step's largest eps·scale of generated against hand-written, over every row, while
    SGD follows the hand-written gradients. eps·scale: max |g - h| / (eps * max |h|), the
    row's scale 1 when h is all zero (:func:`jaxninja.numerics.row_scale`)."""
    names = param_names(params)
    eps = numerics.machine_eps(np.float32)

    def step(params, batch):
        _, acts = recorded(model.forward, params, batch)
        hand = model.backward(params, batch, acts)
        gen = generated(params, batch, acts)
        errors = []
        for name, h in hand.items():
            g = gen[name].reshape(h.shape)
            scale = jnp.max(jnp.abs(h))
            scale = jnp.where(scale > 0, scale, 1.0)
            errors.append(jnp.max(jnp.abs(g - h)) / (eps * scale))
        leaves, treedef = jax.tree.flatten(params)
        new = [p - LR * hand[n].reshape(p.shape) for p, n in zip(leaves, names, strict=True)]
        return jax.tree.unflatten(treedef, new), jnp.max(jnp.stack(errors))

    run = jax.jit(lambda p, xs, ys: jax.lax.scan(step, p, (xs, ys))[1])
    return np.asarray(run(params, xs, ys))


@pytest.mark.slow
def test_generated_tracks_hand_written_for_1000_steps(names_txt):
    model = load_model(WAVENET)
    generated = compile_backward(backward_source(WAVENET))
    params = jax.tree.map(jnp.asarray, model.init(jax.random.key(0)))
    drawn = [model.batch(k) for k in jax.random.split(jax.random.key(1), STEPS)]
    xs = jnp.asarray(np.stack([b[0] for b in drawn]))
    ys = jnp.asarray(np.stack([b[1] for b in drawn]))
    worst = worst_per_step(model, generated, params, xs, ys)
    assert worst.shape == (STEPS,)
    assert np.all(np.isfinite(worst))
    assert worst.max() <= numerics.MODEL_JAX, (int(worst.argmax()), float(worst.max()))
