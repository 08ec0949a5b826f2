"""Issue 15's step variants side by side in one process, taking turns (not a test).

    git archive 51273f0 | tar -x -C /tmp/before     # the step before issue 15
    JAX_PLATFORMS=cpu python -m benchmarks.step_variants --before /tmp/before --rounds 25

Loops, each a 1,000-step ``lax.scan`` chunk of the lecture's configuration, as ``train_speed``
times them (``measure``: rounds interleaved, the order rotating):

    now          ``step.train_chunk`` as it is
    before       the same chunk around ``--before``'s ``jaxninja/lecture/fused.py`` (pow, two
    softmaxes)
    no copies    ``train_chunk`` compiled with ``xla_cpu_copy_insertion_use_region_analysis``
    flat         the seven parameters packed into one vector, one fused update a step
    (m)          ``train_speed``'s six matmuls alone

and prints each loop's steps/s, CPU µs/step, its same-round ratio to ``now`` and to (m), and
whether its parameters after one chunk are bit-identical to ``now``'s.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.train_speed import (
    BATCH,
    SCHEDULE,
    Loop,
    measure,
    same_round_ratio,
    six_matmuls_loop,
)
from jaxninja.data import load_dataset
from jaxninja.lecture.model import Params, init_params
from jaxninja.lecture.step import chunk_indices, learning_rate, sgd_step, train_chunk

CHUNK = 1_000
NO_COPIES = {"xla_cpu_copy_insertion_use_region_analysis": True}
FLAT_ORDER = ("W1", "W2", "C", "b1", "b2", "bngain", "bnbias")  # the big matrices 64-byte aligned


def scan_chunk(step):
    """``train_chunk``'s body around another SGD step (same batches, same learning rates)."""

    @partial(jax.jit, static_argnames=("n_steps",))
    def chunk(params, key, step0, x, y, n_steps):
        steps = step0 + jnp.arange(n_steps)
        ix = chunk_indices(key, steps, BATCH, x.shape[0])
        lrs = learning_rate(SCHEDULE, steps).astype(jax.tree.leaves(params)[0].dtype)
        return jax.lax.scan(step, params, (x[ix], y[ix], lrs))

    return chunk


def before_step(tree: Path):
    """``sgd_step`` with the ``loss_and_grads`` of ``tree``'s jaxninja/lecture/fused.py (or
    jaxninja/fused.py, where it was before the package had folders)."""
    paths = [tree / "jaxninja" / "lecture" / "fused.py", tree / "jaxninja" / "fused.py"]
    spec = importlib.util.spec_from_file_location("fused_before", next(filter(Path.exists, paths)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def step(params, batch):
        xb, yb, lr = batch
        loss, grads = module.loss_and_grads(params, xb, yb)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss

    return step


def pack(tree: Params) -> jax.Array:
    return jnp.concatenate([getattr(tree, k).ravel() for k in FLAT_ORDER])


def unpack(flat: jax.Array, like: Params) -> Params:
    out, offset = {}, 0
    for k in FLAT_ORDER:
        shape = getattr(like, k).shape
        size = int(np.prod(shape))
        out[k] = flat[offset : offset + size].reshape(shape)
        offset += size
    return Params(**out)


def flat_chunk(like: Params):
    """The chunk with the parameters carried as one vector: ``sgd_step``'s update on it."""

    def step(flat, batch):
        params, loss = sgd_step(unpack(flat, like), batch)
        return pack(params), loss

    chunk = scan_chunk(step)

    def run(params, key, step0, x, y, n_steps):
        flat, losses = chunk(pack(params), key, step0, x, y, n_steps)
        return unpack(flat, params), losses

    return run


def chunk_loop(label: str, what: str, chunk, params, key, x, y, steps: int) -> Loop:
    state = {"p": params, "s": 0}

    def run(n: int) -> None:
        for _ in range(n // CHUNK):
            state["p"], losses = chunk(state["p"], key, np.int32(state["s"]), x, y)
            np.asarray(losses)
            state["s"] += CHUNK

    return Loop(label, what, run, steps, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, help="a source tree of the step before (optional)")
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--steps", type=int, default=2_000, help="steps per loop and round")
    args = p.parse_args(argv)
    ds = load_dataset(None, 3)
    x, y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    params = init_params(jax.random.key(0), ds.vocab.size, 10, 200, 3)
    key = jax.random.key(42)

    def compiled(options=None):
        lowered = train_chunk.lower(params, key, np.int32(0), x, y, CHUNK, BATCH, SCHEDULE)
        return lowered.compile(compiler_options=options)

    flat = flat_chunk(params)
    chunks = {
        "now": compiled(),
        "no copies": compiled(NO_COPIES),
        "flat": lambda p, k, s, x, y: flat(p, k, s, x, y, CHUNK),
    }
    if args.before:
        before = scan_chunk(before_step(args.before))
        chunks["before"] = lambda p, k, s, x, y: before(p, k, s, x, y, CHUNK)
    first = {name: chunk(params, key, np.int32(0), x, y)[0] for name, chunk in chunks.items()}
    loops = [
        chunk_loop(name, name, chunk, params, key, x, y, args.steps)
        for name, chunk in chunks.items()
    ]
    loops.append(six_matmuls_loop(args.steps, CHUNK))
    rates, cpu_us = measure(loops, args.rounds)
    print("\n| loop | steps/s | CPU µs/step | / now | / (m) | params bit-identical to now |")
    print("|---|---:|---:|---:|---:|---|")
    for loop in loops:
        same = "–"
        if loop.label in first:
            leaves = zip(*(jax.tree.leaves(first[k]) for k in ("now", loop.label)), strict=True)
            same = "yes" if all(np.array_equal(a, b) for a, b in leaves) else "no"
        print(
            f"| {loop.label} | {statistics.median(rates[loop.label]):,.0f} "
            f"| {statistics.median(cpu_us[loop.label]):.1f} "
            f"| {same_round_ratio(rates[loop.label], rates['now']):.3f} "
            f"| {same_round_ratio(rates[loop.label], rates['(m)']):.3f} | {same} |"
        )
    print(f"\n{args.rounds} rounds of {args.steps:,} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
