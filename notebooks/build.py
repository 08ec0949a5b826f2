"""Build, execute and write both notebooks, deterministically: ``python -m notebooks.build``.

    JAXNINJA_NAMES=$PWD/names.txt python -m notebooks.build          # rewrite both notebooks
    JAXNINJA_NAMES=$PWD/names.txt python -m notebooks.build --check  # exit 1 if one is stale

The solutions notebook comes from :mod:`notebooks.cells`; the exercises notebook is the same
cells with every learner line blanked. Both are executed in a real Jupyter kernel (nbclient)
with progress bars off (``TQDM_DISABLE``) and written with fixed cell ids and no timings, so a
rebuild of unchanged sources gives the same files. Outputs are compared with the stored ones
after :func:`masked` (images by presence only), so ``--check`` catches a changed cell, a
regenerated kernel (its source is printed from the file) and a changed result.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from notebooks.cells import ROOT, Cell, blank, cells

FOLDER = ROOT / "notebooks"
SOLUTIONS = FOLDER / "backprop_ninja.ipynb"
EXERCISES = FOLDER / "backprop_ninja_exercises.ipynb"
TIMEOUT = 300  # seconds per cell at most: the longest, the short training run, takes ~10 s
KERNEL = "python3"
MASKS = [
    (re.compile(r"/tmp/backprop-ninja-\w+"), "<tmp>"),  # the training run's temporary folder
    (re.compile(re.escape(str(ROOT))), "<repo>"),
    (re.compile(r"0x[0-9a-f]{6,}"), "0x…"),  # object addresses in reprs
    # derivations.check_layer's timings: its table's seconds column and its time line
    (re.compile(r"\| \d+\.\d\d \|\n"), "| <s> |\n"),
    (re.compile(r"time: derive \+ prove/refute [^\n]*"), "time: <seconds>"),
]


def notebook(source: list[Cell], exercises: bool) -> nbformat.NotebookNode:
    """An unexecuted notebook of ``source`` (learner lines blanked for the exercises)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": KERNEL, "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(source):
        text = blank(cell.source) if exercises and cell.exercise else cell.source
        make = (
            nbformat.v4.new_markdown_cell if cell.kind == "markdown" else nbformat.v4.new_code_cell
        )
        nb.cells.append(make(text, id=f"cell-{i:02d}"))
    return nb


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel from the repository root; an error fails the build."""
    os.environ["TQDM_DISABLE"] = "1"  # the kernel inherits it: no progress bars in outputs
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name=KERNEL,
        record_timing=False,
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = merged_streams(cell.outputs)
    nb.metadata.pop("widgets", None)
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version in the file
    return nb


def merged_streams(outputs: list) -> list:
    """Consecutive writes to one stream as one output: how the kernel splits printed text
    into messages depends on timing, and must not make two builds differ."""
    merged: list = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and out.output_type == "stream"
            and last.output_type == "stream"
            and last.name == out.name
        ):
            last.text += out.text
        else:
            merged.append(out)
    return merged


def masked(nb: nbformat.NotebookNode) -> list[tuple[str, list[str]]]:
    """Each cell's source and its outputs as text, paths and addresses masked, images as
    ``<image/png>``: what must not change between two builds of the same sources."""
    result = []
    for cell in nb.cells:
        outputs = []
        for out in merged_streams(copy.deepcopy(cell.get("outputs", []))):
            if out.output_type == "stream":
                outputs.append(f"{out.name}: {_mask(out.text)}")
            elif out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                kinds = [k for k in data if k.startswith("image/")]
                text = data.get("text/markdown") or data.get("text/plain", "")
                outputs.append(", ".join(f"<{k}>" for k in kinds) or _mask(str(text)))
            elif out.output_type == "error":
                outputs.append(f"error: {out.ename}: {out.evalue}")
        result.append((cell.source, outputs))
    return result


def _mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write with masked stream text, so the stored file holds no machine paths."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                out.text = _mask(out.text)
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def build() -> dict[Path, nbformat.NotebookNode]:
    """Both notebooks, executed."""
    source = cells()
    built = {}
    for path, exercises in ((SOLUTIONS, False), (EXERCISES, True)):
        start = time.perf_counter()
        built[path] = execute(notebook(source, exercises))
        print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return built


def stale(built: dict[Path, nbformat.NotebookNode]) -> list[str]:
    """Why each stored notebook differs from a fresh build (empty: all current)."""
    problems = []
    for path, nb in built.items():
        if not path.exists():
            problems.append(f"{path.name}: missing")
            continue
        stored = masked(nbformat.read(path, as_version=4))
        fresh = masked(nb)
        if len(stored) != len(fresh):
            problems.append(f"{path.name}: {len(stored)} cells stored, {len(fresh)} built")
            continue
        for i, (a, b) in enumerate(zip(stored, fresh, strict=True)):
            if a != b:
                what = "source" if a[0] != b[0] else "outputs"
                problems.append(f"{path.name}: cell {i} {what} differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check the stored notebooks")
    args = p.parse_args(argv)
    built = build()
    if args.check:
        problems = stale(built)
        for problem in problems:
            print(f"stale: {problem} (run python -m notebooks.build)", file=sys.stderr)
        return 1 if problems else 0
    for path, nb in built.items():
        write(nb, path)
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
