"""How long each example's whole ``jaxninja derive --layer FILE --out K.py`` run takes.

    JAX_PLATFORMS=cpu python -m benchmarks.derive_examples            # every file in examples/
    JAX_PLATFORMS=cpu python -m benchmarks.derive_examples linear gelu  # some of them

Each file runs as its own process, one after another, imports included (issue 11's budget: under
30 s each on the 2-core machine); the table gives the wall and CPU seconds the command itself
prints, the verification's share, and the load average, since wall time depends on the machine's
other jobs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTAL = re.compile(r"total, imports included: ([\d.]+) s wall, ([\d.]+) s CPU")
VERIFY = re.compile(r"verify ([\d.]+) s\)")


def run_one(name: str, folder: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, verify wall s) of one example's whole run, as the command prints them."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxninja",
            "derive",
            "--layer",
            f"examples/{name}.py",
            "--out",
            str(folder / f"{name}_kernel.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    total, verify = TOTAL.search(done.stdout), VERIFY.search(done.stdout)
    if total is None:
        raise SystemExit(f"{name}: no timing line (exit {done.returncode}): {done.stderr.strip()}")
    return float(total[1]), float(total[2]), float(verify[1]) if verify else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="example names (default: all)")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    print("| file | wall s | CPU s | of which verify (wall s) | load |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            wall, cpu, verify = run_one(name, Path(tmp))
            load = os.getloadavg()[0]
            print(
                f"| `{name}.py` | {wall:.1f} | {cpu:.1f} | {verify:.1f} | {load:.1f} |", flush=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
