"""The lecture as notebooks (issue 14): the exercises notebook is the solutions one, learner lines
lines blanked, the solution lines are backward.py's, filled-in blanks are exact, a classic mistake
gets its diagnosis, and (``-m slow``) both stored notebooks execute in a real kernel and are
current with ``python -m notebooks.build``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import nbformat
import pytest

from notebooks import build
from notebooks.cells import LEARNER_LINE, blank, cells, exercise_1_lines

STORED = {path: nbformat.read(path, as_version=4) for path in (build.SOLUTIONS, build.EXERCISES)}


def test_stored_sources_are_the_built_sources() -> None:
    """Cheap half of the staleness check (no kernel): every cell's source is current."""
    for path, exercises in ((build.SOLUTIONS, False), (build.EXERCISES, True)):
        built = build.notebook(cells(), exercises)
        stored = STORED[path]
        assert [c.source for c in stored.cells] == [c.source for c in built.cells], path.name
        assert [c.cell_type for c in stored.cells] == [c.cell_type for c in built.cells]


def test_the_exercises_are_the_solutions_with_the_learner_lines_blank() -> None:
    solutions, exercises = STORED[build.SOLUTIONS].cells, STORED[build.EXERCISES].cells
    blanked = 0
    for s, e in zip(solutions, exercises, strict=True):
        for line_s, line_e in zip(s.source.splitlines(), e.source.splitlines(), strict=True):
            if line_s == line_e:
                continue
            name = LEARNER_LINE.match(line_s).group(1)
            assert line_e == f"{name} = ...  # your line here"
            blanked += 1
    assert blanked >= 26 + 2  # every row of Exercise 1 (some twice), Exercises 2 and 3


def test_exercise_1_solution_is_backward_py_line_for_line() -> None:
    import inspect

    from jaxninja.lecture import backward

    body = inspect.getsource(backward.manual_backward)
    cell = next(c for c in cells() if c.exercise and "dlogprobs" in c.source)
    assert cell.source == exercise_1_lines()
    for line in cell.source.splitlines():
        assert "    " + line in body.splitlines() or not line, line


def _run(sources: list[str]) -> str:
    """Execute notebook cells in-process (without a kernel), returning what they printed."""
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for source in sources:
            exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102
    return out.getvalue()


def _exercise_1_sources(fill: dict[str, str] | None = None) -> list[str]:
    """The exercises notebook up to Exercise 1's cmp lines, blanks filled from the solutions
    (or from ``fill``, line by line)."""
    source = cells()
    end = next(i for i, c in enumerate(source) if c.source.startswith('jaxninja.cmp("logprobs"'))
    code = []
    for cell in source[: end + 1]:
        if cell.kind != "code":
            continue
        text = cell.source
        if cell.exercise:
            solution = text.splitlines()
            filled = blank(text).splitlines()  # what the learner starts from
            text = "\n".join(
                (fill or {}).get(sol, sol) if b != sol else b
                for sol, b in zip(solution, filled, strict=True)
            )
        code.append(text)
    return code


def test_blanks_filled_with_the_solutions_are_exact_in_every_row(names_txt, monkeypatch) -> None:
    monkeypatch.setenv("JAXNINJA_NAMES", str(names_txt))
    printed = _run(_exercise_1_sources())
    rows = [line for line in printed.splitlines() if line.split("|")[0].strip() in ROWS_SET]
    assert len(rows) == 26, printed
    assert all("exact: True" in row for row in rows), printed


ROWS_SET = set(__import__("jaxninja.lecture.backward", fromlist=["ROWS"]).ROWS)


def test_a_classic_mistake_gets_its_diagnosis(names_txt, monkeypatch) -> None:
    """The notebook's dC trap: assignment instead of accumulation at repeated characters."""
    monkeypatch.setenv("JAXNINJA_NAMES", str(names_txt))
    wrong = {"dC = jnp.zeros_like(C).at[xb].add(demb)": "dC = jnp.zeros_like(C).at[xb].set(demb)"}
    printed = _run(_exercise_1_sources(wrong))
    line = next(line for line in printed.splitlines() if line.startswith("C "))
    assert "exact: False" in line and re.search(r"accumulat|scatter", line), line
    others = [ln for ln in printed.splitlines() if ln.split("|")[0].strip() in ROWS_SET - {"C"}]
    assert len(others) == 25, printed  # every row but C printed: all() of none would pass
    assert all("exact: True" in ln for ln in others)


@pytest.mark.slow
def test_both_notebooks_execute_and_are_current(names_txt, monkeypatch) -> None:
    """CI's check: a real Jupyter kernel runs both notebooks without error, and the stored files
    are what the build command writes (sources and masked outputs)."""
    monkeypatch.setenv("JAXNINJA_NAMES", str(names_txt))
    built = build.build()  # raises on any cell error
    assert build.stale(built) == [], "run: python -m notebooks.build"
    assert os.environ.get("TQDM_DISABLE") == "1"


def test_the_notebook_checks_a_derivation_with_check_layer(monkeypatch) -> None:
    """The lecture notebook's own-derivation cell: the tanh claim PROVED, its classic mistake
    REFUTED, each shown through IPython's display (here: collected)."""
    from notebooks.cells import CHECK_LAYER

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    _run(["from IPython.display import display", CHECK_LAYER])
    assert len(shown) == 2
    right, wrong = shown
    assert right.ok and right.verdict.startswith("PROVED 1/1")
    assert not wrong.ok and wrong.verdict.startswith("REFUTED: dhpreact")
    assert "REFUTED" in wrong._repr_markdown_()
