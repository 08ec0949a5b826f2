"""Prove each rule statement with the derivation engine, and (re)write the shipped table.

    python -m jaxninja.backward.prove            # re-prove the table; exit 1 on any change
    python -m jaxninja.backward.prove --write    # also collect the models' rules and rewrite it

The table records the hash of what its verdicts depend on (:mod:`jaxninja.backward.stamp`);
``python -m derivations --check`` re-proves it when that hash no longer holds.

Imports sympy (through :mod:`derivations`): never imported by ``jaxninja backward`` itself.
"""

from __future__ import annotations

import sys
from typing import Any

from jaxninja.backward import statements as st
from jaxninja.backward import table
from jaxninja.backward.stamp import engine_hash


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the statement language's shapes are."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def prove(statement: st.Statement) -> tuple[str, dict[str, str]]:
    """The engine's verdict on a statement: PROVED when every claim is PROVED for symbolic
    sizes; CHECKED when the others are CHECKED exactly at every size of the statement's range (a
    shifted read the symbolic engine does not decide); else NOT PROVED (NOT STATABLE for a rule
    the language cannot state). The fates say which claim got which, with the range."""
    import derivations

    if "rule" in statement:
        return "NOT STATABLE", {}
    kwargs = {k: _tuples(v) for k, v in statement.items()}
    kwargs["forward"] = tuple(statement["forward"])
    try:
        layer = derivations.Layer(name="rule", **kwargs)
        result = derivations.check_layer(layer)
    except Exception as err:  # a statement the engine cannot read is not a proof
        return f"NOT PROVED ({type(err).__name__}: {str(err).splitlines()[0][:120]})", {}
    ranges = {f"d{v.key}": v.checked for v in result.report.verdicts}
    fates = {
        g.name: f"CHECKED exactly for {ranges[g.name]}" if g.fate == "CHECKED" else str(g.fate)
        for g in result.gradients
        if g.claim is not None
    }
    if fates and all(f == "PROVED" for f in fates.values()):
        return "PROVED", fates
    if fates and all(f == "PROVED" or f.startswith("CHECKED") for f in fates.values()):
        return "CHECKED", fates
    return "NOT PROVED", fates


def entry(prim: str, statement: st.Statement) -> dict[str, Any]:
    verdict, fates = prove(statement)
    return {"prim": prim, "verdict": verdict, "fates": fates, "statement": statement}


def reprove(entries: dict[str, Any]) -> list[str]:
    """Every entry proved again; the keys whose stored verdict or key no longer holds."""
    changed = []
    for key, old in entries.items():
        new = entry(old["prim"], old["statement"])
        if st.key(old["statement"]) != key or new["verdict"] != old["verdict"]:
            changed.append(f"{key} {old['prim']}: stored {old['verdict']}, now {new['verdict']}")
    return changed


def write(uses) -> dict[str, Any]:
    """The table for the rule uses ``uses`` (each ``prim, statement``), proved now."""
    out: dict[str, Any] = {}
    for prim, statement in uses:
        k = st.key(statement)
        if k not in out:
            out[k] = entry(prim, statement)
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--write" in argv:
        from jaxninja.backward.collect import collect_uses

        entries = write(collect_uses())
        from jaxninja.backward import rulesdoc

        table.write(entries, engine_hash(entries))
        rulesdoc.DOC.write_text(rulesdoc.render(entries))
        print(f"wrote {len(entries)} rules to {table.TABLE} and {rulesdoc.DOC}")
        return 0
    entries = table.load()
    changed = reprove(entries)
    for line in changed:
        print(line)
    same = engine_hash(entries) == table.recorded_hash()
    print(
        f"{len(entries)} rules re-proved, {len(changed)} changed; the recorded engine hash "
        + ("holds" if same else "is stale (python -m derivations records it)")
    )
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
