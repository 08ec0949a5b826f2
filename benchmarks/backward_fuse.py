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

from benchmarks.backward_command import WAVENET, by_turns

COMMANDS = {
    "backward": ["backward", "--model", str(WAVENET)],
    "--fuse BN": ["backward", "--model", str(WAVENET), "--fuse", "l1.hprebn:l1.hpreact"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    by_turns(COMMANDS, parser.parse_args().rounds)


if __name__ == "__main__":
    main()
