"""``derivations.check_layer(layer)``: what ``jaxninja derive --layer`` finds, from Python.

For a learner checking a derivation in a notebook cell: the result holds each gradient's fate
(PROVED, CHECKED, REFUTED, NOT PROVED), its derived form in the layer's names, the counterexample
of a refuted claim, the kernel's verification and float32 safety, the timings and the verdict
line; Jupyter shows it as a table with the derived forms as rendered math
(``_repr_markdown_``), or as the math alone (``_repr_latex_``); ``print`` gives the CLI's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import sympy as sp

from derivations.engine.derive import Counterexample
from derivations.language.layer import Layer, load_layer
from derivations.outputs import kernel
from derivations.outputs.layer_report import Report, fate, run_layer
from derivations.printing.latex import tex


class Gradient(NamedTuple):
    """One input's gradient as checked."""

    name: str  # "dW"
    derived: sp.Expr  # in the layer's names (intermediates put back)
    claim: str | None  # the claim's text, None without one
    fate: str | None  # PROVED, CHECKED, REFUTED, NOT PROVED; None without a claim
    counterexample: Counterexample | None
    seconds: float


class LayerCheck(NamedTuple):
    """The result of :func:`check_layer`; displays in Jupyter, prints as the CLI's text."""

    report: Report
    gradients: tuple[Gradient, ...]

    @property
    def ok(self) -> bool:
        """What exit status 0 means: every claim proved, the kernel verified and safe."""
        return self.report.ok

    @property
    def verdict(self) -> str:
        """The verdict line (``PROVED 3/3, kernel written: k.py (exit 0)``)."""
        return self.report.verdict

    @property
    def seconds(self) -> dict[str, float]:
        """Each part's time."""
        return dict(self.report.seconds)

    def __str__(self) -> str:
        return self.report.text

    def _repr_markdown_(self) -> str:
        """A table (gradient, claim, verdict, time), each derived form as math, each
        counterexample, and the verdict line."""
        layer = self.report.layer
        rows = [
            f"**{_md(layer.title)}** (layer `{layer.name}`; sizes "
            f"{', '.join(map(str, layer.axes))})",
            "",
            "| gradient | claim | verdict | s |",
            "|---|---|---|---:|",
        ]
        for g in self.gradients:
            claim = f"`{_md(g.claim)}`" if g.claim is not None else "none"
            rows.append(f"| `{g.name}` | {claim} | {g.fate or 'derived'} | {g.seconds:.2f} |")
        rows.append("")
        for g in self.gradients:
            rows.append(f"- derived: ${tex(sp.Symbol(g.name))} = {tex(g.derived)}$")
            if g.counterexample is not None:
                example = g.counterexample
                sizes = ", ".join(f"{k}={v}" for k, v in example.sizes.items())
                rows.append(
                    f"  - counterexample at {sizes}: true ${tex(example.truth)}$, "
                    f"claim ${tex(example.claim)}$ at `d{example.element}`"
                )
        for result in self.report.verified:
            if not result.ok:
                sizes = ", ".join(f"{k}={v}" for k, v in result.sizes.items())
                rows.append(f"- kernel OVER THE BOUND at {sizes}")
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in self.report.seconds.items())
        rows += ["", f"time: {parts}", "", f"**{_md(self.verdict)}**"]
        return "\n".join(rows) + "\n"

    def _repr_latex_(self) -> str:
        """The derived gradients as one aligned block of math."""
        lines = [rf"{tex(sp.Symbol(g.name))} &= {tex(g.derived)}" for g in self.gradients]
        return "$$\\begin{aligned}" + r" \\ ".join(lines) + "\\end{aligned}$$"


def _md(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def check_layer(
    layer: Layer | str | Path, out: str | Path | None = None, allow_unsafe: bool = False
) -> LayerCheck:
    """Check a stated layer (or the layer file at a path) as ``jaxninja derive --layer`` does:
    derive, prove or refute each claim, generate and verify the kernel, check it in float32,
    and write it to ``out`` only if all of that passed. Errors are one-line
    :class:`derivations.language.layer.LayerError` / :class:`jaxninja.errors.ConfigError`."""
    from derivations.outputs import kernelfile

    source, path = "check_layer", None
    if not isinstance(layer, Layer):
        path = kernelfile.check_layer_path(layer)
        source, layer = str(path), load_layer(path)
    target = kernelfile.check_out_path(out, path) if out is not None else None
    report = run_layer(layer, target, source, allow_unsafe=allow_unsafe)
    gradients = []
    for verdict in report.verdicts:
        pairs = kernel.namings(layer, layer.free_sizes(layer.inputs[verdict.key]))
        gradients.append(
            Gradient(
                f"d{verdict.key}",
                kernel.in_names(verdict.derived, layer, pairs),
                layer.claim_text.get(verdict.key),
                fate(verdict),
                verdict.counterexample,
                verdict.seconds,
            )
        )
    return LayerCheck(report, tuple(gradients))
