"""Is the training step as fast as at another commit? Paired ratios of loop (a), taking turns.

    git worktree add /tmp/before HEAD~1
    JAX_PLATFORMS=cpu python -m benchmarks.commit_ratio /tmp/before . --pairs 7

Each turn starts a fresh process in one source tree (``PYTHONPATH``) that compiles the chunk
``jaxninja train`` runs (``jaxninja.training.chunk.train_chunk`` with the lecture's step; in
older trees ``jaxninja.lecture.step.train_chunk``) at the lecture's configuration (n_embd 10,
n_hidden 200, batch 32, names.txt or the default data set), warms up, and times ``--steps``
steps; the trees take turns A B A B ..., and the ratio B/A is taken pair by pair, so a drift of
the machine's speed hits both sides of a pair alike. Prints each pair and the median ratio
(>= 0.97: no step got slower).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import time, jax, numpy as np
from jaxninja.data import load_dataset
try:
    from jaxninja.lecture.model import init_params
    from jaxninja.lecture.step import Schedule
except ImportError:  # a tree from before the package had folders
    from jaxninja.model import init_params
    from jaxninja.step import Schedule
try:  # the chunk training runs today: any model's scan, with the lecture's step
    from jaxninja.models.lecture import lecture_trainable
    from jaxninja.training.chunk import train_chunk as _chunk

    _step = lecture_trainable().step

    def train_chunk(params, *args):
        new, _, losses = _chunk(_step, params, None, *args)
        return new, losses
except ImportError:  # a tree from before models trained through one Trainable
    try:
        from jaxninja.lecture.step import train_chunk
    except ImportError:
        from jaxninja.step import train_chunk
ds = load_dataset(None, 3)
x, y = jax.numpy.asarray(ds.train.x), jax.numpy.asarray(ds.train.y)
params = init_params(jax.random.key(0), ds.vocab.size, 10, 200, 3)
key, chunk, steps = jax.random.key(1), 1000, {steps}
params, _ = train_chunk(params, key, np.int32(0), x, y, chunk, 32, Schedule())
jax.block_until_ready(params)
t = time.perf_counter()
for s in range(0, steps, chunk):
    params, losses = train_chunk(params, key, np.int32(s), x, y, chunk, 32, Schedule())
jax.block_until_ready(params)
print(steps / (time.perf_counter() - t))
"""


def rate(tree: Path, steps: int) -> float:
    """Steps/s of loop (a) in a fresh process importing jaxninja from ``tree``."""
    env = os.environ | {"PYTHONPATH": str(tree.resolve()), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(steps=steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path, help="source tree A (e.g. a worktree of HEAD~1)")
    p.add_argument("after", type=Path, help="source tree B (e.g. .)")
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--steps", type=int, default=20_000)
    args = p.parse_args(argv)
    ratios = []
    for i in range(args.pairs):
        a, b = rate(args.before, args.steps), rate(args.after, args.steps)
        ratios.append(b / a)
        print(f"pair {i + 1}: before {a:,.0f} steps/s, after {b:,.0f} steps/s, ratio {b / a:.3f}")
    print(f"median ratio after/before: {statistics.median(ratios):.3f} over {args.pairs} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
