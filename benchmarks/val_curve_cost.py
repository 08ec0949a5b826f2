"""What loss.png's validation curve costs a lecture run: paired runs with and without it.

    JAX_PLATFORMS=cpu python -m benchmarks.val_curve_cost --steps 200000 --pairs 3
    JAX_PLATFORMS=cpu python -m benchmarks.val_curve_cost --steps 200000 --pairs 3 --seeds 2

Each turn is ``jaxninja.run_training`` of the lecture's model (names.txt via $JAXNINJA_NAMES, or
the default data set) for ``--steps`` steps into a fresh folder, once with the default curve (10
points: BatchNorm calibrated over the training split and the validation loss, as ``evaluate``
computes them) and once with ``val_every=0``; the two take turns, their order alternating pair by
pair, in one process (compiled programs shared, so neither pays compiling the other's). Prints
each pair's wall times and CPU times (every thread of the process, XLA's included: less moved by
other jobs on the machine than the wall time is), the median ratios with/without and the load
average. The curve's cost is
per point, not per step: a shorter run than the lecture's 200,000 steps overstates its share.
``--seeds K``: the same for ``jaxninja.run_many`` (``train --seeds K``), whose K runs each get
their curve (K points at each of the 10 steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jaxninja
from jaxninja.data import load_dataset


def one(config, dataset, val_every: int | None, seeds: int = 0) -> tuple[float, float]:
    """(wall, CPU) seconds of one run_training (folder, training, finishing; no samples), or of
    one run_many of ``seeds`` seeds."""
    quiet = {"data": dataset, "samples": 0, "progress": False, "log": None}
    with tempfile.TemporaryDirectory() as out:
        t, cpu = time.perf_counter(), time.process_time()
        if seeds:
            jaxninja.run_many(config, f"{out}/runs", seeds=seeds, val_every=val_every, **quiet)
        else:
            jaxninja.run_training(config, f"{out}/run", val_every=val_every, **quiet)
        return time.perf_counter() - t, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=0, help="K runs in one program (0: one run)")
    args = p.parse_args(argv)
    data = os.environ.get("JAXNINJA_NAMES")
    config = jaxninja.TrainConfig(steps=args.steps)
    load_dataset(data, config.block_size)  # read once before timing (the OS caches the file)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    one(config, data, None, args.seeds)  # compile both programs' shapes once, outside the pairs
    ratios, cpu_ratios = [], []
    for i in range(args.pairs):
        order = (None, 0) if i % 2 == 0 else (0, None)
        times = {v: one(config, data, v, args.seeds) for v in order}
        ratios.append(times[None][0] / times[0][0])
        cpu_ratios.append(times[None][1] / times[0][1])
        print(f"pair {i}: with curve {times[None][0]:.1f} s (CPU {times[None][1]:.1f} s), "
              f"without {times[0][0]:.1f} s (CPU {times[0][1]:.1f} s), ratio {ratios[-1]:.3f} "
              f"(CPU {cpu_ratios[-1]:.3f})")  # fmt: skip
    what = f"{args.seeds} seeds x " if args.seeds else ""
    print(f"median ratio with/without: {statistics.median(ratios):.3f} (CPU time "
          f"{statistics.median(cpu_ratios):.3f}) over {args.pairs} pairs, "
          f"{what}{args.steps:,} steps; load average at end: {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
