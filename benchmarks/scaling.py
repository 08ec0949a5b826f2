"""Data-parallel scaling: steps/s and examples/s by batch size, device count and process
count, with what the step's all-reduces cost (not a test).

    JAX_PLATFORMS=cpu python -m benchmarks.scaling              # layouts 1x1,1x2,1x4,2x1,2x2
    python -m benchmarks.scaling --layouts 1x1,2x1 --batches 512,4096 --rounds 5

A layout ``PxK`` is P processes with K devices each (P x K devices in all). Every layout runs in
its own subprocess(es), since JAX fixes the number of devices when it starts; P > 1 are real
processes joined by :mod:`jaxninja.devices.distributed` over 127.0.0.1 (JAX's CPU collectives,
gloo),
exactly as ``jaxninja launch`` runs them. The layouts take turns chunk by chunk, so a change in
load hits them alike. On CPU the devices are simulated with
``XLA_FLAGS=--xla_force_host_platform_device_count`` and all processes share the host's cores,
so on a small CPU the table measures the overhead of splitting the batch (partitioning,
all-reduces, synchronisation, and across processes the loopback transport), not a speed-up. On
several hosts with real accelerators the same code measures the speed-up (no such figures were
measured here).

The ``all-reduce`` column times, on the same mesh, a loop of as many all-reduces per step as
the compiled backward holds (``parallel.count_collectives``), each a share of the gradient's
size (parameters + BatchNorm statistics + the loss, split evenly among them): what the
cross-device sums alone cost per step, apart from the arithmetic.

The model is the lecture's (n_embd 10, n_hidden 200, block 3) on names.txt; 1x1 runs
``step.train_chunk`` as ``train.py`` does, every other layout ``parallel.train_chunk_sharded``.
Each row is the median over ``--rounds`` chunks of about a second, compile time apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_EMBD, N_HIDDEN, BLOCK = 10, 200, 3
TARGET_S = 1.0  # aim for about this many seconds per timed chunk


class Worker:
    """The subprocess(es) of one layout, P processes x K devices, timing one training chunk per
    request (every process runs the chunk; process 0 answers).

    The layouts take turns round by round (interleaved), so a change in the machine's load
    hits all of them alike instead of biasing whichever ran last.
    """

    def __init__(self, processes: int, devices_per_process: int):
        env = dict(os.environ)
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        if env.get("JAX_PLATFORMS", "cpu") == "cpu":  # simulate the devices on the host's cores
            flag = f"--xla_force_host_platform_device_count={devices_per_process}"
            kept = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
            env["XLA_FLAGS"] = " ".join([*kept, flag])
        self.layout = (processes, devices_per_process)
        port = _free_port()
        self.procs = []
        for i in range(processes):
            cmd = [sys.executable, "-m", "benchmarks.scaling", "--worker"]
            cmd += [f"{processes},{devices_per_process},{i},{port}"]
            self.procs.append(
                subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                )
            )

    @property
    def name(self) -> str:
        return f"{self.layout[0]}x{self.layout[1]}"

    def time_chunk(self, batch: int) -> dict:
        """Steps/s of one chunk at ``batch`` (the first request per batch also compiles)."""
        for proc in self.procs:
            proc.stdin.write(f"{batch}\n")
            proc.stdin.flush()
        lines = [self._answer(proc) for proc in self.procs]
        if not all(lines):
            sys.exit(f"the {self.name} worker failed (see its stderr above)")
        return json.loads(lines[0])

    @staticmethod
    def _answer(proc: subprocess.Popen) -> str:
        """The next JSON line (gloo prints a connection notice on stdout first)."""
        line = proc.stdout.readline()
        while line and not line.startswith("{"):
            line = proc.stdout.readline()
        return line

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
        for proc in self.procs:
            proc.wait(timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(spec: str) -> None:
    """The worker's loop: read a batch size per line, time one chunk (and, with several
    devices, the step's all-reduces), answer one JSON line."""
    processes, per_process, process_id, port = (int(t) for t in spec.split(","))
    from jaxninja.devices import distributed

    if processes > 1:
        address = f"127.0.0.1:{port}"
        distributed.initialize(distributed.Spec(address, processes, process_id))
    import jax
    import numpy as np

    from jaxninja.data import load_dataset
    from jaxninja.devices import parallel
    from jaxninja.lecture import step
    from jaxninja.lecture.model import init_params

    dataset = load_dataset(None, BLOCK)
    x, y = dataset.train.x, dataset.train.y
    params = init_params(jax.random.key(0), dataset.vocab.size, N_EMBD, N_HIDDEN, BLOCK)
    params = jax.tree.map(np.asarray, params)  # host copies: every process holds the same
    key, schedule = jax.random.key(1), step.Schedule()
    n_devices = processes * per_process
    mesh = parallel.make_mesh(n_devices) if n_devices > 1 else None
    if mesh is None:  # exactly what train.py runs
        x, y = jax.device_put((x, y))

        def run(step0: int, n_steps: int, batch: int):
            return step.train_chunk(params, key, np.int32(step0), x, y, n_steps, batch, schedule)
    else:

        def run(step0: int, n_steps: int, batch: int):
            return parallel.train_chunk_sharded(
                mesh, params, key, step0, x, y, n_steps, batch, schedule
            )

    def seconds(fn, *args) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - t0

    prepared: dict[int, tuple[int, float]] = {}  # batch -> (steps per chunk, compile seconds)
    for line in sys.stdin:
        batch = int(line)
        if batch not in prepared:
            probe = 20  # a short chunk sizes the timed chunks near TARGET_S
            compile_s = seconds(run, 0, probe, batch)
            n_steps = max(probe, int(probe * TARGET_S / max(seconds(run, 0, probe, batch), 1e-6)))
            n_steps = _agreed_steps(n_steps, processes)
            seconds(run, 0, n_steps, batch)  # compile the timed length
            prepared[batch] = (n_steps, compile_s)
        n_steps, compile_s = prepared[batch]
        rate = n_steps / seconds(run, n_steps, n_steps, batch)
        reduce_s = None
        if mesh is not None:
            reduce_s = _allreduce_seconds(mesh, params, batch, n_steps, seconds)
        answer = {"steps_per_s": rate, "n_steps": n_steps, "compile_s": compile_s}
        print(json.dumps(answer | {"allreduce_s_per_step": reduce_s}))
        sys.stdout.flush()


def _agreed_steps(n_steps: int, processes: int) -> int:
    """Every process must run chunks of the same length: process 0's."""
    if processes == 1:
        return n_steps
    import numpy as np
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(n_steps)))


_ALLREDUCE: dict = {}


def _allreduce_seconds(mesh, params, batch: int, n_steps: int, seconds) -> float:
    """Seconds per step of the step's all-reduces alone: as many as the compiled backward
    holds, each of an even share of (parameters + BatchNorm mean and variance + loss)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec as P

    from jaxninja.devices import parallel

    if batch not in _ALLREDUCE:
        rng = np.random.default_rng(0)
        xb = rng.integers(0, 27, (batch, BLOCK), dtype=np.int32)
        yb = rng.integers(0, 27, batch, dtype=np.int32)
        count = parallel.count_collectives(parallel.sharded_hlo(mesh, params, xb, yb))
        n_reduce = max(count["all-reduce"], 1)
        floats = sum(int(np.size(p)) for p in params) + 2 * N_HIDDEN + 1
        share = -(-floats // n_reduce)

        def body(carry, _):
            for _ in range(n_reduce):  # dependent: none can be merged or hoisted
                carry = jax.lax.psum(carry, parallel.BATCH_AXIS) * (1.0 / mesh.size)
            return carry, None

        def loop(v):
            return jax.lax.scan(body, v, None, length=n_steps)[0]

        spec = P(parallel.BATCH_AXIS)
        fn = jax.jit(jax.shard_map(loop, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False))
        v = parallel.place(jnp.ones((mesh.size, share), jnp.float32), parallel.batch_sharding(mesh))
        seconds(fn, v)  # compile
        _ALLREDUCE[batch] = (fn, v)
    fn, v = _ALLREDUCE[batch]
    return seconds(fn, v) / n_steps


def measure(layouts: list[tuple[int, int]], batches: list[int], rounds: int) -> list[dict]:
    """The median steps/s of ``rounds`` interleaved chunks for every (layout, batch) pair."""
    workers = [Worker(*layout) for layout in layouts]
    rows = []
    try:
        for batch in batches:
            for w in workers:  # compile everything before any timing counts
                w.time_chunk(batch)
            timings = {w.layout: [] for w in workers}
            for _ in range(rounds):
                for w in workers:
                    timings[w.layout].append(w.time_chunk(batch))
            for (processes, per_process), runs in timings.items():
                rate = statistics.median(r["steps_per_s"] for r in runs)
                reduce = [r["allreduce_s_per_step"] for r in runs]
                rows.append(
                    {
                        "processes": processes,
                        "devices": processes * per_process,
                        "batch": batch,
                        "steps_per_s": rate,
                        "examples_per_s": rate * batch,
                        "allreduce_us_per_step": None
                        if reduce[0] is None
                        else 1e6 * statistics.median(reduce),
                        "steps_per_chunk": runs[0]["n_steps"],
                        "compile_s": runs[0]["compile_s"],
                    }
                )
    finally:
        for w in workers:
            w.close()
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table; "vs 1x1" compares with one process on one device at the same batch,
    "all-reduce" is the step's cross-device sums alone, in µs and as a share of the step."""
    base = {r["batch"]: r["steps_per_s"] for r in rows if r["devices"] == 1}
    lines = [
        "| processes | devices | batch | steps/s | examples/s | vs 1x1 | all-reduce µs/step "
        "| compile s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in sorted(rows, key=lambda r: (r["batch"], r["processes"], r["devices"])):
        ratio = r["steps_per_s"] / base[r["batch"]] if r["batch"] in base else float("nan")
        reduce = "-"
        if r["allreduce_us_per_step"] is not None:
            share = r["allreduce_us_per_step"] * 1e-6 * r["steps_per_s"]
            reduce = f"{r['allreduce_us_per_step']:,.0f} ({share:.0%})"
        lines.append(
            f"| {r['processes']} | {r['devices']} | {r['batch']:,} | {r['steps_per_s']:,.0f} | "
            f"{r['examples_per_s']:,.0f} | {ratio:.2f}x | {reduce} | {r['compile_s']:.1f} |"
        )
    return "\n".join(lines)


def ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def layouts(text: str) -> list[tuple[int, int]]:
    """``1x1,2x1`` -> [(1, 1), (2, 1)]: processes x devices per process."""
    out = []
    for item in text.split(","):
        p, _, k = item.partition("x")
        out.append((int(p), int(k or 1)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--layouts",
        type=layouts,
        default=layouts("1x1,1x2,1x4,2x1,2x2"),
        help="processes x devices per process (default 1x1,1x2,1x4,2x1,2x2)",
    )
    p.add_argument(
        "--batches", type=ints, default=[32, 512, 4096], help="batch sizes (default 32,512,4096)"
    )
    p.add_argument("--rounds", type=int, default=3, help="timed chunks per row (default 3)")
    p.add_argument("--json", metavar="PATH", help="also write the rows to PATH")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: P,K,process id,port
    args = p.parse_args()
    if args.worker:
        serve(args.worker)
        return
    rows = measure(args.layouts, args.batches, args.rounds)
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
