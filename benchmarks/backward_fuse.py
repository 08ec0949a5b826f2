"""``jaxninja backward --model examples/models/wavenet.py --fuse l1.hprebn:l1.hpreact`` (one
BatchNorm segment, part 5's over axes (0, 1), through the derivation engine) against the same
command without ``--fuse``, whole processes taking turns (not a test): the difference is the
segment's statement, derivation, proof and kernel verification, plus sympy's import.

    JAX_PLATFORMS=cpu python -m benchmarks.backward_fuse --rounds 3

Printed: each command's median wall and CPU seconds (children's user + system), the load
average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchmarks.backward_command import WAVENET, timed

COMMANDS = {
    "backward": ["backward", "--model", str(WAVENET)],
    "--fuse BN": ["backward", "--model", str(WAVENET), "--fuse", "l1.hprebn:l1.hpreact"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    order = list(COMMANDS)
    for _ in range(args.rounds):
        for name in order:
            times[name].append(timed(COMMANDS[name]))
        order.reverse()
    for name, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        cpu = statistics.median(t[1] for t in ts)
        worst = max(t[0] for t in ts)
        print(
            f"{name:10s} wall {wall:6.1f} s (max {worst:5.1f})  cpu {cpu:6.1f} s  (median of "
            f"{args.rounds})"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
