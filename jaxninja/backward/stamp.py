"""When the shipped rule table must be re-proved: a hash of everything its verdicts depend on.

``proofs.json`` records, beside its rules, the SHA-256 of: the rules themselves (each statement
with its stored verdict and fates), the source of the derivation engine that proved them (every
``.py`` file of the ``derivations`` package, by path and bytes), :mod:`jaxninja.backward.prove`
(which turns the engine's result into a verdict) and sympy's version. ``python -m derivations
--check`` recomputes it (no sympy import, a few milliseconds): equal, the verdicts stand as
proved; different, the whole table is re-proved (minutes) and any changed verdict fails the
check. ``python -m derivations`` (and ``python -m jaxninja.backward.prove --write``) record
the hash after a re-proof that changed no verdict.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from jaxninja.backward import table

PROVER = Path(__file__).with_name("prove.py")


def engine_root() -> Path:
    """The derivation engine's package folder (found without importing it: that loads sympy)."""
    spec = importlib.util.find_spec("derivations")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the derivations package is not importable")
    return Path(next(iter(spec.submodule_search_locations)))


def engine_hash(rules: dict[str, Any]) -> str:
    """The hash ``proofs.json`` records: the rules, the engine's source, the prover, sympy."""
    digest = hashlib.sha256()
    digest.update(json.dumps(rules, sort_keys=True, separators=(",", ":")).encode())
    digest.update(f"sympy {importlib.metadata.version('sympy')}\n".encode())
    root = engine_root()
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    named = [(p.relative_to(root.parent).as_posix(), p) for p in files]
    for name, path in [*named, ("jaxninja/backward/prove.py", PROVER)]:
        digest.update(f"{name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def derivations_step(root: Path, write: bool) -> int:
    """The rule table's part of ``python -m derivations`` (``--check``: ``write`` False): one
    line when the recorded hash holds; else a full re-proof, exit 1 if any verdict changed, and
    (``write``) the new hash recorded when none did. A root without the table (a folder holding
    only the derivations' own outputs) has nothing to re-prove: a missing table proves nothing,
    the generator then refuses every rule. Returns the exit status."""
    path = root / "jaxninja" / "backward" / table.TABLE.name
    if not path.is_file():  # a root without the package's table: nothing is proved by it
        print(f"derivations: no backward rule table at {path}: nothing to re-prove")
        return 0
    rules, recorded = table.load(path), table.recorded_hash(path)
    if not rules:
        print(f"derivations: {path} holds no rules", flush=True)
        return 1
    now = engine_hash(rules)
    if now == recorded:
        print(
            f"derivations: backward rule table: {len(rules)} verdicts, engine unchanged since "
            f"they were proved (hash {now[:16]})"
        )
        return 0
    print(
        f"derivations: backward rule table: engine, sympy or table changed since the rules were "
        f"proved (hash {str(recorded)[:16]}, now {now[:16]}): re-proving {len(rules)} rules",
        flush=True,
    )
    from jaxninja.backward.prove import reprove

    start, cpu = time.perf_counter(), time.process_time()
    changed = reprove(rules)
    took = f"{time.perf_counter() - start:.0f} s wall, {time.process_time() - cpu:.0f} s CPU"
    for line in changed:
        print(f"derivations: backward rule changed: {line}")
    if changed:
        print(
            f"derivations: {len(changed)} of {len(rules)} verdicts changed ({took}): look at "
            "them, then 'python -m jaxninja.backward.prove --write'"
        )
        return 1
    if write:
        table.write(rules, now, path)
        print(f"derivations: {len(rules)} verdicts unchanged ({took}); recorded hash {now[:16]}")
    else:
        print(
            f"derivations: {len(rules)} verdicts unchanged ({took}); record the new hash with "
            "'python -m derivations'"
        )
    return 0
