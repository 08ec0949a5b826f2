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
