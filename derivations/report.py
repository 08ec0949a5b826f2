"""The plain-text report ``jaxninja derive`` prints: each derivation step by step, for a person
checking the math, with every proof's result and the time each part took."""

from __future__ import annotations

import sympy as sp

from derivations.build import Results


def _ok(flag: bool) -> str:
    return "proved" if flag else "FAILED"


def _expr(expr: sp.Expr) -> str:
    return sp.sstr(expr)


def render_report(results: Results, steps: bool = True) -> str:
    """The report; ``steps`` False keeps only the closed forms and proof results."""
    lines: list[str] = []
    for derivation in results.derivations:
        layer = derivation.layer
        lines += [f"== {layer.title} ({layer.name}, {derivation.seconds:.2f} s)", "forward:"]
        lines += [f"  {_expr(lhs)} = {_expr(rhs)}" for lhs, rhs in layer.forward]
        for step in derivation.steps:
            name, wrt = step.gradient.name, step.gradient.wrt
            lines.append(f"-- {name} = d/d {_expr(wrt)}")
            if steps:
                lines += [
                    f"  1 derivative:  {_expr(step.derivative)}",
                    f"  2 names:       {_expr(step.named)}",
                    f"  3 collapsed:   {_expr(step.collapsed)}",
                    f"  4 derived:     {_expr(step.derived)}",
                    f"  5 simplified:  {_expr(step.simplified)}",
                ]
            lines += [
                f"  closed form:   {name} = {_expr(step.gradient.closed)}",
                f"  proof:         simplify(derived - closed) == 0: "
                f"{_ok(step.proof.simplified)}; exact rational point: "
                f"{_ok(step.proof.point)}",
            ]
        checked = results.identities[layer.name]
        held = sum(c.holds for c in checked)
        lines.append(f"-- identities: {held}/{len(checked)} hold in the raw inputs")
        lines += [
            f"  {_expr(c.lhs)} = {_expr(c.rhs)}  ({c.why}): {_ok(c.holds)}"
            for c in checked
            if steps or not c.holds
        ]
        lines.append("")
    lines.append("== Exercise 1 chain, composed symbolically == closed form")
    lines += [f"  {name}: {_ok(proof.ok)}" for name, proof in results.chains.items()]
    sizes = sorted({b.n for b in results.brute})
    agree = sum(b.ok for b in results.brute)
    lines += [
        "",
        f"== brute force at n = {', '.join(map(str, sizes))} (exact derivative, "
        f"50 digits, no delta collapsing): {agree}/{len(results.brute)} agree",
    ]
    lines += [f"  FAILED {b.layer}.{b.gradient} at n={b.n}" for b in results.brute if not b.ok]
    total = sum(results.seconds.values())
    parts = ", ".join(f"{name} {sec:.1f} s" for name, sec in results.seconds.items())
    lines += ["", f"== time: {total:.1f} s ({parts})"]
    return "\n".join(lines) + "\n"
