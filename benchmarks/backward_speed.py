"""The generated backward against the hand-written one, training the WaveNet side by side (not a
test): ``jaxninja backward``'s performance target, >= 0.95x the hand-written steps/s.

    JAX_PLATFORMS=cpu python -m benchmarks.backward_speed --rounds 5 --steps 500

Each loop is one jitted ``lax.scan`` of SGD steps over the same batches: the forward with its
taps collected, the backward (hand-written: ``examples/models/wavenet.py``'s; generated:
``jaxninja.backward_source`` of the same file), the update. The loops take turns, the order
rotating each round; printed: each loop's median steps/s, the median of the same-round ratios,
whether the two loops' parameters after one chunk agree within float32 noise, and the load
average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.backward import backward_source
from jaxninja.backward.write import compile_backward
from jaxninja.gradcheck.taps import param_names
from jaxninja.models.protocol import load_model, recorded

WAVENET = Path(__file__).resolve().parents[1] / "examples" / "models" / "wavenet.py"


def loop(model, backward, steps: int, lr: float = 0.05):
    """A jitted scan of ``steps`` SGD steps with ``backward``, over batches (steps, B, ...)."""
    names = None

    def step(params, batch):
        _, acts = recorded(model.forward, params, batch)
        grads = backward(params, batch, acts)
        leaves, treedef = jax.tree.flatten(params)
        new = [p - lr * grads[n].reshape(p.shape) for p, n in zip(leaves, names, strict=True)]
        return jax.tree.unflatten(treedef, new), None

    @jax.jit
    def run(params, xs, ys):
        return jax.lax.scan(step, params, (xs, ys))[0]

    def call(params, xs, ys):
        nonlocal names
        names = param_names(params)
        return run(params, xs, ys)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    model = load_model(WAVENET)
    generated = compile_backward(backward_source(WAVENET))
    key = jax.random.key(0)
    params = jax.tree.map(jnp.asarray, model.init(key))
    keys = jax.random.split(jax.random.key(1), args.steps)
    drawn = [model.batch(k) for k in keys]
    xs = jnp.asarray(np.stack([b[0] for b in drawn]))
    ys = jnp.asarray(np.stack([b[1] for b in drawn]))
    loops = {
        "hand-written": loop(model, model.backward, args.steps),
        "generated": loop(model, generated, args.steps),
    }
    finals = {name: jax.block_until_ready(f(params, xs, ys)) for name, f in loops.items()}
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(*(jax.tree.leaves(v) for v in finals.values()), strict=True)
    )
    rates: dict[str, list[float]] = {name: [] for name in loops}
    order = list(loops)
    for _ in range(args.rounds):
        for name in order:
            start = time.perf_counter()
            jax.block_until_ready(loops[name](params, xs, ys))
            rates[name].append(args.steps / (time.perf_counter() - start))
        order.reverse()
    ratios = [g / h for g, h in zip(rates["generated"], rates["hand-written"], strict=True)]
    for name, r in rates.items():
        print(f"{name:13s} {statistics.median(r):8.1f} steps/s (median of {args.rounds})")
    print(f"generated / hand-written, same round: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")  # fmt: skip
    print(f"largest parameter difference after {args.steps} steps: {diff:.3g}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
