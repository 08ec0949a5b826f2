"""The files ``python -m derivations`` writes, rendered from the engine's results.

Separate from :mod:`derivations.build` (which runs the engine) so that the renderers, which
read :class:`derivations.build.Results`, are imported by neither the other way round.
"""

from __future__ import annotations

from pathlib import Path

from derivations.build import Results
from derivations.outputs.generated_module import render_module
from derivations.outputs.markdown import render_markdown

GENERATED = Path("jaxninja/lecture/generated.py")
DOCS = Path("docs/derivations.md")


def outputs(results: Results) -> dict[Path, str]:
    """The generated files, by path relative to the repository root; they depend only on the
    derivations, never on the timings, so a fresh run reproduces them byte for byte."""
    return {GENERATED: render_module(results.derived()), DOCS: render_markdown(results)}
