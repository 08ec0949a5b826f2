"""The table of proved rule statements shipped with the package (``proofs.json``), read without
sympy: ``{"engine_hash": ..., "rules": {key: {"prim", "verdict", "fates", "statement"}}}``
(:mod:`jaxninja.backward.statements` for the keys; :mod:`jaxninja.backward.stamp` for the hash
of what the verdicts depend on). :mod:`jaxninja.backward.prove` writes it and re-proves it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jaxninja.backward import statements as st

TABLE = Path(__file__).with_name("proofs.json")


@functools.cache
def _load(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}


def load(path: str | Path = TABLE) -> dict[str, Any]:
    """The rules of the table at ``path`` (empty if it does not exist)."""
    return _load(str(path)).get("rules", {})


def recorded_hash(path: str | Path = TABLE) -> str | None:
    """The hash of what the verdicts depend on, as recorded when they were proved."""
    return _load(str(path)).get("engine_hash")


def write(rules: dict[str, Any], engine_hash: str | None, path: Path = TABLE) -> None:
    """Write ``rules`` and the ``engine_hash`` they were proved under to ``path``."""
    text = json.dumps({"engine_hash": engine_hash, "rules": rules}, indent=1, sort_keys=True)
    path.write_text(text + "\n")
    _load.cache_clear()


def lookup_in(table: dict[str, Any]):
    """``lookup(statement)``: None if ``table`` holds the statement PROVED (or CHECKED: exact at
    every size of its stated range, the engine's verdict for a shifted read it does not prove),
    else why not. The stored statement must equal the asked one (a key is a hash prefix: never
    trust it alone)."""

    def lookup(statement: st.Statement) -> str | None:
        entry = table.get(st.key(statement))
        if entry is None:
            return "not in the proof table"
        if json.dumps(entry.get("statement"), sort_keys=True) != json.dumps(
            statement, sort_keys=True
        ):
            return "the table's statement under this key differs"
        if entry.get("verdict") not in ("PROVED", "CHECKED"):
            return f"the engine's verdict is {entry.get('verdict')}"
        return None

    return lookup
