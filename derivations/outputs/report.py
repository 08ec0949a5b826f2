"""The plain-text report ``jaxninja derive`` prints: each lecture layer through the engine, as
``jaxninja derive --layer FILE`` prints a layer file, with the time each part took."""

from __future__ import annotations

from derivations.build import Results
from derivations.lecture import CHAINS
from derivations.outputs.layer_report import verdict_lines


def render_report(results: Results, steps: bool = True) -> str:
    """The report; ``steps`` False leaves out the derived forms (claims and verdicts only)."""
    lines: list[str] = []
    for checked in results.layers:
        layer = checked.layer
        sizes = ", ".join(map(str, layer.axes))
        seconds = sum(checked.seconds.values())
        lines += [f"== {layer.title} (layer {layer.name}; sizes {sizes}; {seconds:.2f} s)"]
        lines += ["forward:"] + [f"  {line.text}" for line in layer.lines]
        lines += [f"-- {name}: a shift, d / d {name} = 0 proved" for name in layer.shifts]
        for verdict in checked.verdicts:
            lines += verdict_lines(layer, verdict, steps)
            exact = "; ".join(
                ", ".join(f"{k}={v}" for k, v in sizes.items())
                for sizes in checked.concrete.get(verdict.key, [])
            )
            lines.append(f"  exact check at {exact}: agrees")
        for verdict in checked.chains:
            chained = layer.with_claims(CHAINS[layer.name])
            lines.append("-- Exercise 1 chain, composed:")
            lines += verdict_lines(chained, verdict, steps)[1:]
        lines += [f"  PROBLEM: {problem}" for problem in checked.problems]
        lines.append("")
    total = sum(results.seconds.values())
    parts = ", ".join(f"{name} {sec:.1f} s" for name, sec in results.seconds.items())
    lines.append(f"== time: {total:.1f} s ({parts})")
    return "\n".join(lines) + "\n"
