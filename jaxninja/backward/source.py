"""The generator's entry points: a model (or model file) in, the backward's source out
(:func:`generate_source` with the rules it used, :func:`backward_source` the text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxninja.backward import table
from jaxninja.backward.emit import Source, generate
from jaxninja.backward.trace import trace
from jaxninja.checks import dtype_scope
from jaxninja.errors import JaxninjaError, ModelError
from jaxninja.models.protocol import Model, frame_line, load_model, one_line


def _inputs(model: Model, seed: int) -> tuple[Any, Any]:
    """The model's parameters and batch at ``seed`` (as the check draws them), floats as
    float64: the trace's constants (``1 / (n - 1)``) are then exact in float64 and round to the
    forward's own float32 values when the backward runs in float32."""
    kinit, kbatch = jax.random.split(jax.random.key(seed))

    def wide(x: Any) -> Any:
        x = np.asarray(x)
        return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x

    params = jax.tree.map(wide, model.init(kinit))
    batch = jax.tree.map(wide, model.batch(kbatch))
    return params, batch


def generate_source(
    model: Model | str | Path,
    *,
    lookup=None,
    seed: int = 42,
    allow_unproved: frozenset[str] = frozenset(),
    fuse: tuple[str, ...] | list[str] = (),
) -> Source:
    """The generated backward of ``model`` with the rules it used (:class:`Source`).
    ``lookup(statement)`` says whether a rule instance is proved (default: the shipped table);
    a primitive in ``allow_unproved`` may use a rule that is not (named in the docstring);
    each ``fuse`` segment ``"A:B"`` is one closed form the derivation engine proved
    (:mod:`jaxninja.backward.fuse`; the only use of sympy)."""
    model = load_model(model) if isinstance(model, str | Path) else model
    lookup = table.lookup_in(table.load()) if lookup is None else lookup
    with dtype_scope("float64"):
        params, batch = _guarded(model, "init(key) / batch(key)", _inputs, model, seed)
        traced = _guarded(model, "forward", trace, model.forward, params, batch)
    if isinstance(fuse, str):
        fuse = (fuse,)
    return generate(traced, lookup, frozenset(allow_unproved), tuple(fuse))


def _guarded(model: Model, what: str, fn, *args: Any) -> Any:
    """``fn(*args)``; an exception of the model's own code is one :class:`ModelError` line
    naming the function and the model file's line."""
    try:
        return fn(*args)
    except JaxninjaError:
        raise
    except Exception as err:
        where = frame_line(err, str(Path(model.name).resolve()))
        raise ModelError(
            f"{model.name}: {what} raised {type(err).__name__}{where}: {one_line(err)}"
        ) from None


def backward_source(
    model: Model | str | Path,
    *,
    seed: int = 42,
    allow_unproved: frozenset[str] = frozenset(),
    fuse: tuple[str, ...] | list[str] = (),
) -> str:
    """The Python source of ``backward(params, batch, acts)`` for ``model`` (a
    :class:`~jaxninja.models.protocol.Model` or a model file's path), every rule it uses proved
    (else a one-line :class:`~jaxninja.errors.BackwardError`). Not checked: ``jaxninja backward``
    and :func:`jaxninja.backward.write.checked_backward` run the check table first.
    ``fuse=["logits:loss"]``: that segment as one proved closed form (Exercise 2's
    ``dlogits``); its inner taps get no gradient rows."""
    return generate_source(model, seed=seed, allow_unproved=allow_unproved, fuse=fuse).code
