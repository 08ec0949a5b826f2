"""A model as training sees it: :class:`Trainable`, the few functions the training loop, the
evaluation and the checkpoints call, whatever the model. The lecture's MLP is one
(:func:`jaxninja.models.lecture.lecture_trainable`); a model file is another
(:func:`file_trainable`, from :func:`jaxninja.models.protocol.load_model`). Nothing in
:mod:`jaxninja.training` knows which it runs.

A model file's manual backward is trained as it is checked: ``forward(params, batch, tap)``
records every tapped value, ``backward(params, batch, acts)`` returns the gradients by name,
and the parameters' gradients are picked out by their key-path names
(:func:`jaxninja.gradcheck.taps.param_names`). Before the first step :func:`validate` runs
each function once and turns a broken protocol (a missing gradient, a wrong shape or dtype, a
NaN gradient at step 0, statistics that change structure) into one :class:`ModelError` line
naming the function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.checks import float_dtype
from jaxninja.config import TrainConfig
from jaxninja.errors import ModelError
from jaxninja.gradcheck.taps import param_names
from jaxninja.models.protocol import (
    Model,
    frame_line,
    load_model,
    one_line,
    recorded,
    split_spec,
)

Step = Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any, Any]]


class Trainable(NamedTuple):
    """What training needs of a model; every function but ``start`` and ``finish`` is traced
    under ``jit`` (and must be hashable: it is a static argument of the compiled programs).

    ``start(config, vocab_size)`` -> (params, stats, batch_key): step 0 of a run (stats: the
    statistics carried through training, None if the model has none). ``step(params, stats, xb,
    yb)`` -> (loss, grads, stats): one step's manual backward. ``loss(params, xb, yb)``: the
    forward ``jax.grad`` audits (``--check-every``). ``finish(params, stats, x_train)``: the
    statistics evaluation uses (the lecture calibrates BatchNorm; part 5 keeps its running
    statistics). ``logits(params, stats, x)``: next-character logits, for the split losses and
    sampling (None: the model has none, and both are skipped with a note).
    """

    name: str  # "lecture", or the --model spec
    record: tuple[tuple[str, str], ...]  # what a checkpoint records of the model (empty: lecture)
    start: Callable[[TrainConfig, int], tuple[Any, Any, jax.Array]]
    step: Step
    loss: Callable[[Any, jax.Array, jax.Array], jax.Array]
    finish: Callable[[Any, Any, Any], Any] | None
    logits: Callable[[Any, Any, jax.Array], jax.Array] | None
    defaults: tuple[tuple[str, Any], ...] = ()  # the model's own TrainConfig defaults
    validate: Callable[[Any, Any, jax.Array, jax.Array], None] | None = None
    warm: bool = False  # whether jaxninja.training.warmup compiles its finishing programs ahead

    @property
    def is_file(self) -> bool:
        """Whether this model came from a file (its checkpoint records which)."""
        return bool(self.record)

    @property
    def recorded(self) -> dict[str, str] | None:
        """What a checkpoint, ``summary.json`` and ``runs.json`` record of the model: the
        file's record as a dict, or None for the lecture's."""
        return dict(self.record) if self.record else None


def model_record(model: Model) -> tuple[tuple[str, str], ...]:
    """What a checkpoint and runs.json record of a model file: the spec as given, the file's
    name and the SHA-256 of its source. Never code."""
    name = split_spec(model.name)[0].name
    return (("model", model.name), ("file", name), ("sha256", model.source_sha256 or ""))


def file_trainable(spec: str | Path | Model) -> Trainable:
    """The :class:`Trainable` of a model file (``FILE`` or ``FILE:NAME``)."""
    model = load_model(spec) if not isinstance(spec, Model) else spec
    hooks = model.hooks

    def start(config: TrainConfig, vocab_size: int) -> tuple[Any, Any, jax.Array]:
        init_key, batch_key = jax.random.split(jax.random.key(config.seed))
        params = _call(model, "init", model.init, init_key, vocab_size)
        params = _as_params(model, params, float_dtype(config.dtype))
        stats = None
        if "stats_init" in hooks:
            stats = _call(model, "stats_init", hooks["stats_init"], params)
            stats = jax.tree.map(jnp.asarray, stats)
        return params, stats, batch_key

    def step(params: Any, stats: Any, xb: jax.Array, yb: jax.Array) -> tuple[Any, Any, Any]:
        batch = (xb, yb)
        loss, acts = _call(model, "forward", recorded, model.forward, params, batch)
        grads = _call(model, "backward", model.backward, params, batch, acts)
        grads = _picked(model, grads, params)
        if "stats_update" in hooks:
            stats = _call(model, "stats_update", hooks["stats_update"], stats, acts)
        return loss, grads, stats

    def loss(params: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        return model.forward(params, (xb, yb), lambda name, value: value)

    finish = None
    if "calibrate" in hooks:
        finish = partial(_calibrated, hooks["calibrate"])
    elif "stats_init" in hooks:
        finish = _running
    logits = hooks.get("logits")
    defaults = tuple(sorted(model.train_defaults.items()))
    checked = partial(_validate, model, step)
    return Trainable(
        model.name, model_record(model), start, step, loss, finish, logits, defaults, checked
    )


def _picked(model: Model, grads: Any, params: Any) -> Any:
    """The parameters' gradients out of ``backward``'s dict, in the parameters' structure and
    dtypes; a missing one is a :class:`ModelError` naming it (at trace time)."""
    if not isinstance(grads, Mapping):
        raise ModelError(f"{model.name}: backward() returned {type(grads).__name__}, not a dict "
                         "of gradients by name")  # fmt: skip
    names = param_names(params)
    missing = [n for n in names if n not in grads]
    if missing:
        raise ModelError(
            f"{model.name}: backward() returned no gradient for parameter {missing[0]} (its "
            f"result must hold every parameter by name: {', '.join(names)})"
        )
    leaves, treedef = jax.tree.flatten(params)
    cast = [jnp.asarray(grads[n], p.dtype) for n, p in zip(names, leaves, strict=True)]
    return treedef.unflatten(cast)


def _calibrated(calibrate: Callable, params: Any, stats: Any, x_train: Any) -> Any:
    return calibrate(params, x_train)


def _running(params: Any, stats: Any, x_train: Any) -> Any:
    """Part 5's evaluation: the running statistics the steps kept."""
    return stats


def _call(model: Model, what: str, fn: Callable, *args: Any) -> Any:
    """``fn(*args)``; anything it raises (or a ``sys.exit``) is one line naming ``what``."""
    try:
        return fn(*args)
    except SystemExit as err:
        raise ModelError(f"{model.name}: {what}() called sys.exit({err.code!r})") from None
    except ModelError:
        raise
    except Exception as err:
        where = frame_line(err, str(split_spec(model.name)[0].resolve()))
        raise ModelError(
            f"{model.name}: {what}() raised {type(err).__name__}{where}: {one_line(err)}"
        ) from None


def _as_params(model: Model, params: Any, dtype: np.dtype) -> Any:
    """``init``'s parameters as jax arrays of the run's float dtype; refused if a leaf is not a
    floating array."""
    leaves, treedef = jax.tree.flatten(params)
    if not leaves:
        raise ModelError(f"{model.name}: init() returned no arrays")
    names = param_names(params)
    out = []
    for name, leaf in zip(names, leaves, strict=True):
        arr = np.asarray(leaf)
        if arr.dtype.kind != "f":
            raise ModelError(f"{model.name}: init() parameter {name} is {arr.dtype}, not float")
        out.append(jnp.asarray(arr, dtype))
    return treedef.unflatten(out)


def _validate(model: Model, step: Step, params: Any, stats: Any, xb: Any, yb: Any) -> None:
    """One step of ``step`` (compiled), its outputs held to the protocol: a scalar finite loss,
    a gradient of every parameter's shape and dtype, finite at step 0, statistics of unchanged
    structure. Each failure one line naming the function."""
    try:
        loss, grads, new_stats = jax.jit(step)(params, stats, xb, yb)
    except (ModelError, SystemExit):
        raise
    except Exception as err:
        raise ModelError(
            f"{model.name}: forward()/backward() under jit raised {type(err).__name__}: "
            f"{one_line(err)}"
        ) from None
    if np.shape(loss) != () or not np.isfinite(float(loss)):
        raise ModelError(
            f"{model.name}: forward() gave loss {loss} at step 0 (not a finite scalar)"
        )
    _check_grads(model, params, grads)
    if stats is not None and jax.tree.structure(new_stats) != jax.tree.structure(stats):
        raise ModelError(f"{model.name}: stats_update() changed the statistics' structure")


def _check_grads(model: Model, params: Any, grads: Any) -> None:
    names = param_names(params)
    for name, p, g in zip(names, jax.tree.leaves(params), jax.tree.leaves(grads), strict=True):
        if np.shape(g) != np.shape(p):
            raise ModelError(
                f"{model.name}: backward() gives {name} shape {np.shape(g)}, the parameter's is "
                f"{np.shape(p)}"
            )
        if not np.isfinite(np.asarray(g)).all():
            raise ModelError(f"{model.name}: backward() gives a non-finite d{name} at step 0")


def defaults_config(trainable: Trainable, given: TrainConfig | Mapping[str, Any] | None) -> Any:
    """The settings of a fresh run: the model's own defaults, then what was ``given`` (a
    config or the fields to change); ``given`` itself for a model without defaults."""
    if not trainable.defaults:
        return given
    given = given.fields() if isinstance(given, TrainConfig) else dict(given or {})
    known = set(TrainConfig.field_names())
    bad = sorted(set(dict(trainable.defaults)) - known)
    if bad:
        raise ModelError(
            f"{trainable.name}: train_defaults has unknown setting(s) {', '.join(bad)}"
        )
    return dict(trainable.defaults) | dict(given)


def count_params(params: Any) -> int:
    """How many numbers the parameters hold."""
    return sum(math.prod(np.shape(leaf)) for leaf in jax.tree.leaves(params))


def trainable_of(model: str | Path | Trainable | None) -> Trainable:
    """The model to train: a :class:`Trainable` as given, a model file's (``FILE`` or
    ``FILE:NAME``), or (None) the lecture's MLP."""
    if isinstance(model, Trainable):
        return model
    if model is None:
        from jaxninja.models.lecture import lecture_trainable

        return lecture_trainable()
    return file_trainable(model)


def restore_tree(template: Any, flat: Mapping[str, Any], what: str, where: str) -> Any:
    """``template``'s pytree with the arrays of ``flat`` (names as :func:`param_names` gives
    them, as a model checkpoint stores them): the same names, each of the template's shape.
    One :class:`CheckpointError` line otherwise (a checkpoint of another model, or forged)."""
    from jaxninja.errors import CheckpointError

    leaves, treedef = jax.tree.flatten(template)
    names = param_names(template) if leaves else []
    if sorted(names) != sorted(flat):
        missing, extra = sorted(set(names) - set(flat)), sorted(set(flat) - set(names))
        raise CheckpointError(
            f"{where}: its {what} are not this model's (missing {', '.join(missing) or '-'}; "
            f"not in the model {', '.join(extra) or '-'})"
        )
    out = []
    for name, leaf in zip(names, leaves, strict=True):
        if np.shape(flat[name]) != np.shape(leaf):
            raise CheckpointError(
                f"{where}: {what} {name} has shape {np.shape(flat[name])}, the model's is "
                f"{np.shape(leaf)}"
            )
        out.append(jnp.asarray(flat[name]))
    return treedef.unflatten(out)
