"""The backward written for you: from a model's ``forward(params, batch, tap)`` to a readable
``backward(params, batch, acts)`` in the lecture's Exercise-1 style, every rule proved by the
derivation engine ahead of time (the shipped table, :mod:`jaxninja.backward.table`), the result
cross-checked (``check --model``'s table) before it is written.

    import jaxninja
    print(jaxninja.backward_source("examples/models/wavenet.py"))

The parts: :mod:`~jaxninja.backward.trace` (the forward as named equations),
:mod:`~jaxninja.backward.rules` (one rule per primitive, JAX's transpose forms),
:mod:`~jaxninja.backward.statements` (each rule instance as an engine statement),
:mod:`~jaxninja.backward.emit` (the source), :mod:`~jaxninja.backward.source` (the entry
points), :mod:`~jaxninja.backward.write` (check, then write), :mod:`~jaxninja.backward.prove`
(re-proves the table; the only part importing sympy), :mod:`~jaxninja.backward.stamp` (when to).
The entry points load on first use: ``python -m derivations --check`` reads the table's hash
through this package without importing jax.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"backward_source", "generate_source"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from jaxninja.backward import source

        return getattr(source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["backward_source", "generate_source"]
