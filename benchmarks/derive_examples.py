"""How long each example's whole ``jaxninja derive --layer FILE --out K.py`` run takes, alone or
against another source tree by turns.

    JAX_PLATFORMS=cpu python -m benchmarks.derive_examples            # every file in examples/
    JAX_PLATFORMS=cpu python -m benchmarks.derive_examples linear gelu  # some of them
    git worktree add /tmp/before HEAD~3
    JAX_PLATFORMS=cpu python -m benchmarks.derive_examples --base /tmp/before   # side by side
    python -m benchmarks.derive_examples --corpus   # the identity corpus, in this process

Each file runs as its own process, one after another, imports included (issue 11's budget: under
30 s each on the 2-core machine); the table gives the wall and CPU seconds the command itself
prints, the verification's share, the exit status and the load average, since wall time depends
on the machine's other jobs. With ``--base``, each file runs in both trees (``PYTHONPATH``, the
same interpreter; each tree's own statement of the example where it has one, as an older
tree's language may not read this tree's claims), the base first for odd rows and this tree first
for even ones, so a drift of the machine's speed hits both sides alike; the last lines give the
medians and the median per-file CPU ratio this/base. ``--corpus`` times the derivation and
proof (or refutation) of each identity of ``tests/derivations/corpus.py``, right claim and wrong
twin, in one process after the imports (CPU seconds each).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTAL = re.compile(r"total, imports included: ([\d.]+) s wall, ([\d.]+) s CPU")
VERIFY = re.compile(r"verify ([\d.]+) s\)")


def run_one(name: str, folder: Path, tree: Path = ROOT) -> tuple[float, float, float, int]:
    """(wall s, CPU s, verify wall s, exit status) of one example's whole run in ``tree``, as
    the command prints them: the example as ``tree`` states it where it has the file (an
    older tree's language may not read this tree's claims), else this tree's."""
    own = tree / "examples" / f"{name}.py"
    layer = own if own.is_file() else ROOT / "examples" / f"{name}.py"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxninja",
            "derive",
            "--layer",
            str(layer),
            "--out",
            str(folder / f"{name}_kernel.py"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(tree)},
    )
    total, verify = TOTAL.search(done.stdout), VERIFY.search(done.stdout)
    if total is None:
        raise SystemExit(f"{name}: no timing line (exit {done.returncode}): {done.stderr.strip()}")
    checked = float(verify[1]) if verify else float("nan")
    return float(total[1]), float(total[2]), checked, done.returncode


def corpus() -> int:
    """The identity corpus: each claim's fate and CPU seconds, imports excluded."""
    import time

    from derivations.engine.derive import check
    from derivations.language.layer import Layer
    from derivations.outputs.layer_report import fate
    from tests.derivations.corpus import IDENTITIES

    print("| identity | right | CPU s | wrong twin | CPU s | load |")
    print("|---|---|---:|---|---:|---:|")
    for identity in IDENTITIES:
        row = [f"`{identity.name}`"]
        for claim in (identity.right, identity.wrong):
            start = time.process_time()
            layer = Layer(identity.name, claims={identity.key: claim}, **identity.statement)
            verdict = check(layer, identity.key)
            row += [fate(verdict) or "", f"{time.process_time() - start:.2f}"]
        print(f"| {' | '.join(row)} | {os.getloadavg()[0]:.1f} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="example names (default: all)")
    parser.add_argument("--base", type=Path, help="another source tree, run by turns with this")
    parser.add_argument("--corpus", action="store_true", help="time the identity corpus instead")
    args = parser.parse_args(argv)
    if args.corpus:
        return corpus()
    names = args.names or sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    if args.base is None:
        print("| file | wall s | CPU s | of which verify (wall s) | exit | load |")
        print("|---|---:|---:|---:|---:|---:|")
    else:
        print("| file | base wall s | base CPU s | wall s | CPU s | CPU ratio | exit | load |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios, base_cpu, cpus = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for row, name in enumerate(names):
            if args.base is None:
                wall, cpu, verify, status = run_one(name, Path(tmp))
                load = os.getloadavg()[0]
                print(
                    f"| `{name}.py` | {wall:.1f} | {cpu:.1f} | {verify:.1f} | {status} "
                    f"| {load:.1f} |",
                    flush=True,
                )
                continue
            order = [args.base, ROOT] if row % 2 == 0 else [ROOT, args.base]
            runs = {tree: run_one(name, Path(tmp), tree) for tree in order}
            (b_wall, b_cpu, _, _), (wall, cpu, _, status) = runs[args.base], runs[ROOT]
            load = os.getloadavg()[0]
            ratios.append(cpu / b_cpu)
            base_cpu.append(b_cpu)
            cpus.append(cpu)
            print(
                f"| `{name}.py` | {b_wall:.1f} | {b_cpu:.1f} | {wall:.1f} | {cpu:.1f} "
                f"| {cpu / b_cpu:.2f} | {status} | {load:.1f} |",
                flush=True,
            )
    if ratios:
        print(
            f"\nmedian CPU: base {statistics.median(base_cpu):.1f} s, this "
            f"{statistics.median(cpus):.1f} s; median per-file CPU ratio this/base "
            f"{statistics.median(ratios):.2f} over {len(ratios)} files"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
