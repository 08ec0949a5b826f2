"""Data-parallel scaling: steps/s and examples/s by batch size and device count (not a test).

    JAX_PLATFORMS=cpu python -m benchmarks.scaling                  # 1, 2, 4 simulated devices
    python -m benchmarks.scaling --devices 1,2,4,8 --batches 512,4096 --rounds 5

Each device count runs in its own subprocess, since JAX fixes the number of devices when it
starts, and the subprocesses take turns chunk by chunk, so a change in load hits them alike. On
CPU the devices are simulated with ``XLA_FLAGS=--xla_force_host_platform_device_count`` and share
the host's cores, so on a small CPU the table measures the overhead of splitting the batch
(partitioning, all-reduces, synchronisation), not a speed-up. On a host with several real
accelerators the same command measures the speed-up (no such figures were measured here).

The model is the lecture's (n_embd 10, n_hidden 200, block 3) on names.txt; 1 device runs
``step.train_chunk`` as ``train.py`` does, N > 1 devices run ``parallel.train_chunk_sharded``.
Each row is the median over ``--rounds`` chunks of about a second, compile time apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_EMBD, N_HIDDEN, BLOCK = 10, 200, 3
TARGET_S = 1.0  # aim for about this many seconds per timed chunk


class Worker:
    """A subprocess that sees ``n_devices`` devices and times one training chunk per request.

    The device counts take turns round by round (interleaved), so a change in the machine's load
    hits all of them alike instead of biasing whichever ran last.
    """

    def __init__(self, n_devices: int):
        env = dict(os.environ)
        if env.get("JAX_PLATFORMS", "cpu") == "cpu":  # simulate the devices on the host's cores
            flag = f"--xla_force_host_platform_device_count={n_devices}"
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
        cmd = [sys.executable, "-m", "benchmarks.scaling", "--worker", str(n_devices)]
        self.n_devices = n_devices
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def time_chunk(self, batch: int) -> dict:
        """Steps/s of one chunk at ``batch`` (the first request per batch also compiles)."""
        self.proc.stdin.write(f"{batch}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"the {self.n_devices}-device worker failed (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def serve(n_devices: int) -> None:
    """The worker's loop: read a batch size per line, time one chunk, answer one JSON line."""
    import jax
    import numpy as np

    from jaxninja import parallel, step
    from jaxninja.data import load_dataset
    from jaxninja.model import init_params

    dataset = load_dataset(None, BLOCK)
    x, y = dataset.train.x, dataset.train.y
    params = init_params(jax.random.key(0), dataset.vocab.size, N_EMBD, N_HIDDEN, BLOCK)
    key, schedule = jax.random.key(1), step.Schedule()
    if n_devices == 1:  # exactly what train.py runs
        x, y = jax.device_put((x, y))

        def run(step0: int, n_steps: int, batch: int):
            return step.train_chunk(params, key, np.int32(step0), x, y, n_steps, batch, schedule)
    else:
        mesh = parallel.make_mesh(n_devices)

        def run(step0: int, n_steps: int, batch: int):
            return parallel.train_chunk_sharded(
                mesh, params, key, step0, x, y, n_steps, batch, schedule
            )

    def seconds(step0: int, n_steps: int, batch: int) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(run(step0, n_steps, batch))
        return time.perf_counter() - t0

    prepared: dict[int, tuple[int, float]] = {}  # batch -> (steps per chunk, compile seconds)
    for line in sys.stdin:
        batch = int(line)
        if batch not in prepared:
            probe = 20  # a short chunk sizes the timed chunks near TARGET_S
            compile_s = seconds(0, probe, batch)
            n_steps = max(probe, int(probe * TARGET_S / max(seconds(0, probe, batch), 1e-6)))
            seconds(0, n_steps, batch)  # compile the timed length
            prepared[batch] = (n_steps, compile_s)
        n_steps, compile_s = prepared[batch]
        rate = n_steps / seconds(n_steps, n_steps, batch)
        print(json.dumps({"steps_per_s": rate, "n_steps": n_steps, "compile_s": compile_s}))
        sys.stdout.flush()


def measure(devices: list[int], batches: list[int], rounds: int) -> list[dict]:
    """The median steps/s of ``rounds`` interleaved chunks for every (devices, batch) pair."""
    workers = [Worker(n) for n in devices]
    rows = []
    try:
        for batch in batches:
            for w in workers:  # compile everything before any timing counts
                w.time_chunk(batch)
            timings = {w.n_devices: [] for w in workers}
            for _ in range(rounds):
                for w in workers:
                    timings[w.n_devices].append(w.time_chunk(batch))
            for n, runs in timings.items():
                rate = statistics.median(r["steps_per_s"] for r in runs)
                rows.append(
                    {
                        "devices": n,
                        "batch": batch,
                        "steps_per_s": rate,
                        "examples_per_s": rate * batch,
                        "steps_per_chunk": runs[0]["n_steps"],
                        "compile_s": runs[0]["compile_s"],
                    }
                )
    finally:
        for w in workers:
            w.close()
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table; the last column compares with 1 device at the same batch."""
    base = {r["batch"]: r["steps_per_s"] for r in rows if r["devices"] == 1}
    lines = [
        "| devices | batch | steps/s | examples/s | vs 1 device | compile s |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for r in sorted(rows, key=lambda r: (r["batch"], r["devices"])):
        ratio = r["steps_per_s"] / base[r["batch"]] if r["batch"] in base else float("nan")
        lines.append(
            f"| {r['devices']} | {r['batch']:,} | {r['steps_per_s']:,.0f} | "
            f"{r['examples_per_s']:,.0f} | {ratio:.2f}x | {r['compile_s']:.1f} |"
        )
    return "\n".join(lines)


def ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=ints, default=[1, 2, 4], help="device counts (default 1,2,4)")
    p.add_argument(
        "--batches", type=ints, default=[32, 512, 4096], help="batch sizes (default 32,512,4096)"
    )
    p.add_argument("--rounds", type=int, default=3, help="timed chunks per row (default 3)")
    p.add_argument("--json", metavar="PATH", help="also write the rows to PATH")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: one device count
    args = p.parse_args()
    if args.worker:
        serve(args.worker)
        return
    rows = measure(args.devices, args.batches, args.rounds)
    print(table(rows))
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '(unset)')}, "
        f"median of {args.rounds} interleaved chunks of ~{TARGET_S:g} s each"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
