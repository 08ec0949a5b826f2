"""The files ``python -m derivations`` writes, rendered from the derivations' results.

Separate from :mod:`derivations.build` (which runs the derivations) so that the renderers,
which read :class:`derivations.build.Results`, are imported by neither the other way round:
``build`` -> ``markdown`` -> ``build`` was an import cycle.
"""

from __future__ import annotations

from pathlib import Path

from derivations.build import Results
from derivations.codegen import render_module
from derivations.markdown import render_markdown

GENERATED = Path("jaxninja/generated.py")
DOCS = Path("docs/derivations.md")


def outputs(results: Results) -> dict[Path, str]:
    """The generated files, by path relative to the repository root; they depend only on the
    derivations, never on the timings, so a fresh run reproduces them byte for byte."""
    return {GENERATED: render_module(), DOCS: render_markdown(results)}
