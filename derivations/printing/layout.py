"""Laying out generated code as a person would: the line width, wrapped sums, spacing."""

from __future__ import annotations

import re

WIDTH = 99  # ruff's line length is 100


def wrap_code(line: str, indent: str) -> list[str]:
    """Break a long statement before a top-level ``+``/``-`` inside its outer parentheses."""
    if len(line) <= WIDTH:
        return [line]
    depth, best = 0, None
    for pos, char in enumerate(line):
        depth += (char == "(") - (char == ")")
        if depth == 1 and line[pos : pos + 3] in (" - ", " + ") and pos <= WIDTH:
            best = pos
    if best is None:
        return [line]
    opening = line.index("(")
    rest = " " * (opening + 1) + line[best + 1 :]
    return [line[:best], *wrap_code(rest, indent)]


def spaced(code: str) -> str:
    """Spaces around ``*``, ``/`` and ``@``, as a person writes them (``**`` stays tight)."""
    code = re.sub(r"(?<![*\s])\*(?![*])", " * ", code)
    code = re.sub(r"(?<=[^*\s])/", " / ", code)
    return code


def signature(name: str, params: list[str], result: str | None = None) -> list[str]:
    """``def name(params) -> result:`` on one line, or with the parameters on a line of their
    own (a trailing comma, as a formatter writes it) when that one line is too long."""
    arrow = f" -> {result}" if result else ""
    line = f"def {name}({', '.join(params)}){arrow}:"
    if len(line) <= WIDTH:
        return [line]
    return [f"def {name}(", f"    {', '.join(params)},", f"){arrow}:"]
