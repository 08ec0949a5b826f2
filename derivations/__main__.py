"""``python -m derivations``: derive, prove, brute-force, and regenerate the generated files.

    python -m derivations          # rewrite jaxninja/lecture/generated.py and docs/derivations.md
    python -m derivations --check  # exit 1 naming each file that differs from a fresh run

Run from the repository root. Nothing is written when any proof fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from derivations.build import run_all
from derivations.outputs.files import outputs
from jaxninja.backward.stamp import derivations_step


def stale(files: dict[Path, str], root: Path) -> list[Path]:
    """The files under ``root`` whose text differs from ``files`` (or that are missing)."""
    return [
        path
        for path, text in files.items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m derivations", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a generated file is stale"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="repository root holding jaxninja/ and docs/ (default: .)",
    )
    args = parser.parse_args(argv)
    if derivations_step(args.root, write=not args.check):  # jaxninja backward's rule table
        return 1
    start, cpu = time.perf_counter(), time.process_time()
    results = run_all()
    failures = results.failures()
    if failures:
        for failure in failures:
            print(f"derivations: not proved: {failure}", file=sys.stderr)
        return 1
    rendering = time.perf_counter()
    files = outputs(results)
    parts = {**results.seconds, "render": time.perf_counter() - rendering}
    timing = (
        f"{time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU: "
        + ", ".join(f"{name} {value:.1f} s" for name, value in parts.items())
    )
    if args.check:
        old = stale(files, args.root)
        for path in old:
            print(f"derivations: {path} is stale: run 'python -m derivations'", file=sys.stderr)
        if old:
            return 1
        print(f"derivations: all proved, generated files current ({timing})")
        return 0
    for path, text in files.items():
        (args.root / path).parent.mkdir(parents=True, exist_ok=True)
        (args.root / path).write_text(text, encoding="utf-8")
        print(f"derivations: wrote {path}")
    print(f"derivations: all proved ({timing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
