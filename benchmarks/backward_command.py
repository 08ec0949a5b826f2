"""``jaxninja backward --model examples/models/wavenet.py`` against ``jaxninja check --model`` of
the same file, whole processes taking turns (not a test): the generator's own cost is the
difference, since ``backward`` runs the same check table before it prints.

    JAX_PLATFORMS=cpu python -m benchmarks.backward_command --rounds 3

Printed: each command's median wall and CPU seconds (children's user + system), the load
average before and after.
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

WAVENET = Path(__file__).resolve().parents[1] / "examples" / "models" / "wavenet.py"
COMMANDS = {
    "backward": ["backward", "--model", str(WAVENET)],
    "check": ["check", "--model", str(WAVENET)],
}


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``jaxninja`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxninja", *argv], check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def by_turns(commands: dict[str, list[str]], rounds: int) -> None:
    """Run ``commands`` (name -> jaxninja arguments) ``rounds`` times each, taking turns (the
    order reversed every round), and print each one's median wall and CPU time and worst wall."""
    print(f"load average before: {os.getloadavg()}")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    order = list(commands)
    for _ in range(rounds):
        for name in order:
            times[name].append(timed(commands[name]))
        order.reverse()
    for name, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        cpu = statistics.median(t[1] for t in ts)
        worst = max(t[0] for t in ts)
        print(
            f"{name:10s} wall {wall:6.1f} s (max {worst:5.1f})  cpu {cpu:6.1f} s  (median of "
            f"{rounds})"
        )
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    by_turns(COMMANDS, parser.parse_args().rounds)


if __name__ == "__main__":
    main()
