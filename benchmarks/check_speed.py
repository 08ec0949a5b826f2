"""How long ``jaxninja check`` takes, whole process, side by side with another checkout.

    python benchmarks/check_speed.py --base /path/to/other/checkout [--rounds 3]

Each round runs every command once in this checkout and once in ``--base`` (a worktree of an
older commit: its package is put first on ``PYTHONPATH``), taking turns (A B, then B A), so the
two see the same machine drift. Commands: the lecture's ``check`` (jax, torch: no fd) and
``check --model examples/models/wavenet.py --against jax,torch,fd`` (this checkout's model file
for both). Prints each run's wall time, its CPU time (user + system of the process and its
children: on a shared machine the CPU time moves less with the load than the wall time) and the
1-minute load average beside it, then the medians and their ratios (this / base). A failing
command (non-zero exit other than 1) stops the run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "lecture check": ["check"],
    "wavenet jax,torch,fd": [
        "check",
        "--model",
        str(ROOT / "examples" / "models" / "wavenet.py"),
        "--against",
        "jax,torch,fd",
    ],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(tree: Path, args: list[str]) -> tuple[float, float]:
    """One process of ``python -m jaxninja ARGS`` with ``tree`` first on the path: its wall and
    CPU time."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jaxninja", *args], env=env, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if done.returncode not in (0, 1):
        sys.exit(f"{tree}: {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, type=Path, help="the other checkout to compare with")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        trees = [("this", ROOT), ("base", args.base)]
        for name, argv in COMMANDS.items():
            for which, tree in trees if r % 2 == 0 else trees[::-1]:
                wall, cpu = run(tree, argv)
                load = os.getloadavg()[0]
                times.setdefault((name, which), []).append((wall, cpu))
                print(
                    f"round {r + 1} {name:22s} {which}: {wall:6.1f} s wall, {cpu:6.1f} s CPU "
                    f"(load {load:.1f})",
                    flush=True,
                )
    print()
    for name in COMMANDS:
        for k, what in enumerate(("wall", "CPU")):
            this = statistics.median(t[k] for t in times[name, "this"])
            base = statistics.median(t[k] for t in times[name, "base"])
            print(
                f"{name:22s} {what:4s} this {this:6.1f} s, base {base:6.1f} s, "
                f"ratio {this / base:.2f}"
            )


if __name__ == "__main__":
    main()
