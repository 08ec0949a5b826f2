"""Gradients of intermediates, for any JAX function: the zero-probe construction.

JAX has no ``retain_grad``: ``jax.grad`` differentiates with respect to a function's *inputs*,
so the gradient of a value computed inside the function is not one call away. The construction:
write the forward as ``forward(params, batch, tap) -> scalar loss`` and mark each intermediate
with ``x = tap("x", x)``. :func:`intermediate_grads` then

1. traces ``forward`` once abstractly (``jax.eval_shape``) with a recording tap, to learn each
   tapped name's shape and dtype (and to refuse what it cannot differentiate, below);
2. differentiates ``loss(params, probes)``, where ``tap(name, x)`` returns ``x + probes[name]``
   and every probe is zero. The forward's values are unchanged (``x + 0 == x``), and since
   ``d(x + p)/dp = 1`` the gradient with respect to ``probes[name]`` *is* d loss / d x: the
   cotangent that reaches the tapped value, summed over all its uses, with no arithmetic added
   (the transpose of an add passes the cotangent through). The add is a ``custom_jvp`` whose
   value is ``x`` itself, since ``p`` is known to be zero: nothing is computed, eagerly nothing
   compiled, and ``-0.0`` stays ``-0.0``. Run eagerly, this is bit for bit what
   ``jax.grad`` gives with ``x`` made an explicit input of the rest of the forward; under
   ``jit=True`` XLA compiles a different program and the two agree within
   :data:`jaxninja.numerics.JAX_JIT` eps·scale (README, "`jaxninja check`").

The tapped values themselves come back as ``acts`` (the pass's primal values, before the probe
is added), so a manual backward can use exactly the numbers the reference saw.

What is refused, and why (each a one-line :class:`TapError`):

- a tap inside ``jax.lax.scan`` / ``vmap`` / ``cond`` (the value is a tracer of the inner
  transformation): one probe would stand for every iteration or batch element and its gradient
  would be their sum, not any one value's;
- a name tapped twice: the probe would receive the sum of both values' gradients;
- a name that is not a string, or that is also a parameter's name;
- a forward whose result is not a scalar floating loss.

It may itself be called inside ``jax.jit`` (or pass ``jit=True``).

**Taps under an inner jit.** A forward that calls a jitted function (``jax.jit``, Flax's
``nnx.jit``, Equinox's ``eqx.filter_jit``) that taps inside it is traced with the inner jits
inlined (``jax.disable_jit`` around the forward only: the inner function is called as Python,
its operations recorded in the pass's own trace, or run one by one eagerly), so each tapped
value is the forward's own, and its probe is added where it is computed. Only such a forward is
run this way, found by a first trace that meets a tap in an inner trace; every other forward
runs as before. Eagerly the inlined forward's rows are bit for bit ``jax.grad``'s of the same
inlined forward; against the forward with its inner jits compiled they agree within
:data:`jaxninja.numerics.JAX_JIT` eps·scale (XLA compiles the inner program; the jit bound).
A tap inside ``scan``/``vmap`` under an inner jit is still refused: with jit inlined, a scan
runs its body once per iteration (``tap called twice``) and a vmap still batches it.

Integer and boolean values (indices, masks) are kept in ``acts`` but have no gradient row: they
are skipped, and listed in :attr:`Taps.skipped`. Integer parameter leaves likewise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.errors import TapError

Tap = Callable[[str, Any], Any]
Forward = Callable[[Any, Any, Tap], Any]


class Taps(NamedTuple):
    """What :func:`tapped_grads` measured: the loss, the tapped values, and d loss / d each."""

    loss: jax.Array
    acts: dict[str, jax.Array]  # every tapped value by name, in forward order
    grads: dict[str, jax.Array]  # tapped floating values (forward order), then parameters
    skipped: tuple[str, ...]  # integer / boolean taps and parameters: no gradient


def param_names(params: Any) -> list[str]:
    """One name per leaf of ``params``: the dict key / attribute / index path joined by ``.``
    (``Params.W1`` -> ``W1``, ``{"layers": [{"W": ..}]}`` -> ``layers.0.W``); a bare array is
    ``params``."""
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    keystr = jax.tree_util.keystr
    names = [keystr(path, simple=True, separator=".") or "params" for path, _ in paths]
    if len(set(names)) != len(names):
        raise TapError(f"parameter names repeat: {names}")
    return names


def is_float(x: Any) -> bool:
    """Whether jax can differentiate with respect to ``x`` (a floating or complex array)."""
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _trace_of(x: Any) -> Any:
    """The trace a tracer belongs to (None for a concrete array)."""
    return getattr(x, "_trace", None) if isinstance(x, jax.core.Tracer) else None


def _record(forward: Forward, params: Any, batch: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Trace ``forward`` abstractly (``jax.eval_shape``: nothing is computed or compiled) with a
    recording tap: each name's shape and dtype, in order; the loss must be a scalar.

    A tapped value that belongs to another trace than the forward's own inputs was computed
    inside ``scan`` / ``vmap`` / ``cond`` / an inner ``jit``: refused (module docstring)."""
    seen: dict[str, jax.ShapeDtypeStruct] = {}
    reserved = set(param_names(params))
    top: list[Any] = []

    def tap(name: Any, value: Any) -> Any:
        if not isinstance(name, str):
            raise TapError(f"tap names must be strings, got {name!r}")
        if name in seen:
            raise TapError(
                f"tap({name!r}) called twice: a name may be tapped once (inside a Python loop, "
                "put the loop index in the name)"
            )
        if name in reserved:
            raise TapError(f"tap({name!r}): {name!r} is also a parameter's name")
        trace = _trace_of(value)
        if trace is not None and top and trace is not top[0]:
            nested = TapError(
                f"tap({name!r}) inside jax.lax.scan / vmap / cond: one probe would stand "
                "for every iteration's value; tap at the top level of forward"
            )
            nested.nested = True  # an inner trace: inlines_jit tries again with jit inlined
            raise nested
        value = value if isinstance(value, jax.Array) else jnp.asarray(value)
        seen[name] = jax.ShapeDtypeStruct(value.shape, value.dtype)
        return value

    def traced(params: Any, batch: Any) -> Any:
        top.extend(t for t in map(_trace_of, jax.tree.leaves((params, batch))) if t is not None)
        out = forward(params, batch, tap)
        try:
            return jnp.asarray(out)
        except TypeError:
            raise TapError(
                f"forward must return a scalar floating loss, got {type(out).__name__}"
            ) from None

    loss = jax.eval_shape(traced, params, batch)
    shape = getattr(loss, "shape", None)
    if shape != () or not jnp.issubdtype(loss.dtype, jnp.inexact):
        what = f"shape {shape}" if shape is not None else type(loss).__name__
        raise TapError(f"forward must return a scalar floating loss, got {what}")
    return seen


@jax.custom_jvp
def _probe(value: jax.Array, probe: jax.Array) -> jax.Array:
    """``value + probe`` for a probe that is zero: the value itself (no add computed, so no
    program compiled for it eagerly, and ``-0.0`` stays ``-0.0``); its derivative is that of the
    add, ``dvalue + dprobe``, so the cotangent of ``probe`` is the cotangent of the value,
    untouched (an add's transpose passes the cotangent through to both operands).

    The tangent add is ``lax.add``, not ``+``: ``jnp``'s add is a jitted function, and under
    ``jax.vjp`` its known part ran eagerly as a program of no inputs, compiled once per tapped
    shape (~40 ms each); the primitive is only recorded for the backward."""
    return value


@_probe.defjvp
def _probe_jvp(primals, tangents):
    (value, _), (dvalue, dprobe) = primals, tangents
    return value, jax.lax.add(dvalue, dprobe)


class _Pass(NamedTuple):
    """``forward`` made differentiable in its float parameter leaves and one zero probe per
    float tap: ``loss_fn(float_leaves, probes, int_leaves, batch) -> (loss, acts)``."""

    shapes: dict[str, jax.ShapeDtypeStruct]  # every tap, in forward order
    floats: list[str]  # the floating taps: each gets a probe
    names: list[str]  # every parameter leaf's name
    diff: list[int]  # the floating parameter leaves' indices
    loss_fn: Callable[..., tuple[Any, dict[str, Any]]]

    def inputs(self, leaves: list[Any]) -> tuple[list[Any], dict[str, np.ndarray], list[Any]]:
        """``float_leaves, probes, int_leaves`` for :attr:`loss_fn`. The probes are numpy
        zeros: eagerly, a ``jnp.zeros`` of each shape would compile a program of its own."""
        shapes = self.shapes
        probes = {name: np.zeros(shapes[name].shape, shapes[name].dtype) for name in self.floats}
        float_leaves = [leaves[i] for i in self.diff]
        int_leaves = [None if i in self.diff else leaf for i, leaf in enumerate(leaves)]
        return float_leaves, probes, int_leaves

    def taps(self, loss: Any, acts: dict, dleaves: list, dprobes: dict) -> Taps:
        """The :class:`Taps` of one pass's results, gradients and acts in forward order."""
        grads = {name: dprobes[name] for name in self.floats}
        grads |= {self.names[i]: g for i, g in zip(self.diff, dleaves, strict=True)}
        skipped = tuple(n for n in self.shapes if n not in dprobes)
        skipped += tuple(n for i, n in enumerate(self.names) if i not in self.diff)
        acts = {name: acts[name] for name in self.shapes}  # forward order (pytree dicts sort)
        return Taps(loss, acts, grads, skipped)


def inlines_jit(
    forward: Forward, params: Any, batch: Any
) -> tuple[Forward, dict[str, jax.ShapeDtypeStruct]]:
    """``(forward, shapes)`` when every tap is at the top level of ``forward``'s trace; else
    ``(inlined, shapes)``, ``inlined`` running ``forward`` with inner jits inlined (module
    docstring), when that puts every tap at the top level; ``shapes``: :func:`_record`'s.
    Raises the one-line :class:`TapError` otherwise (a tap inside scan / vmap / cond)."""
    try:
        return forward, _record(forward, params, batch)
    except TapError as err:
        if not getattr(err, "nested", False):
            raise
        first = err

    def inlined(params: Any, batch: Any, tap: Tap) -> Any:
        with jax.disable_jit():
            return forward(params, batch, tap)

    try:
        return inlined, _record(inlined, params, batch)
    except TapError:  # still nested, or a scan's body run per iteration: "called twice"
        raise TapError(str(first)) from None


def _prepare(forward: Forward, params: Any, batch: Any) -> _Pass:
    """Record ``forward``'s taps (:func:`_record`) and build its probed loss function (with
    inner jits inlined when a tap is inside one, :func:`inlines_jit`)."""
    forward, shapes = inlines_jit(forward, params, batch)
    floats = [name for name, s in shapes.items() if jnp.issubdtype(s.dtype, jnp.inexact)]
    leaves, treedef = jax.tree.flatten(params)
    diff = [i for i, leaf in enumerate(leaves) if is_float(leaf)]

    def loss_fn(float_leaves, probes, int_leaves, batch):
        merged = list(int_leaves)
        for i, leaf in zip(diff, float_leaves, strict=True):
            merged[i] = leaf
        acts: dict[str, Any] = {}

        def tap(name: str, value: Any) -> Any:
            value = value if isinstance(value, jax.Array) else jnp.asarray(value)
            acts[name] = value  # the primal value, before the probe
            return _probe(value, probes[name]) if name in probes else value

        loss = forward(jax.tree.unflatten(treedef, merged), batch, tap)
        return loss, acts

    return _Pass(shapes, floats, param_names(params), diff, loss_fn)


def tapped_grads(forward: Forward, params: Any, batch: Any, *, jit: bool = False) -> Taps:
    """The loss, every tapped value and d loss / d every tapped value and parameter leaf.

    ``forward(params, batch, tap)`` returns a scalar loss and marks intermediates with
    ``x = tap("x", x)``; ``params`` and ``batch`` are any pytrees of arrays. See the module
    docstring for the construction, its bit-exactness and what it refuses. Eagerly this is
    :func:`tapped_forward` and its ``backward()``.
    """
    if not jit:
        return tapped_forward(forward, params, batch).backward()
    pass_ = _prepare(forward, params, batch)
    leaves = jax.tree.leaves(params)

    def run(leaves, batch):
        float_leaves, probes, int_leaves = pass_.inputs(leaves)
        grad = jax.value_and_grad(pass_.loss_fn, argnums=(0, 1), has_aux=True)
        (loss, acts), (dleaves, dprobes) = grad(float_leaves, probes, int_leaves, batch)
        return loss, acts, dleaves, dprobes

    return pass_.taps(*jax.jit(run)(leaves, batch))


class TappedForward(NamedTuple):
    """The eager forward of :func:`tapped_grads`, run: its loss and tapped values (``acts``,
    final), and ``backward()``, which runs the pending backward pass and returns the
    :class:`Taps`. A manual backward needs only ``acts``, so it can run while ``backward()``
    does (:mod:`jaxninja.gradcheck.model_check` runs them in two threads)."""

    loss: jax.Array
    acts: dict[str, jax.Array]
    backward: Callable[[], Taps]


def tapped_forward(forward: Forward, params: Any, batch: Any) -> TappedForward:
    """Run ``forward`` eagerly under ``jax.vjp`` (the first half of ``jax.value_and_grad``,
    which is this and the vjp of the cotangent 1): the loss, the tapped values, and the
    backward still to run. Refuses what :func:`tapped_grads` refuses."""
    pass_ = _prepare(forward, params, batch)
    float_leaves, probes, int_leaves = pass_.inputs(jax.tree.leaves(params))

    def loss_fn(float_leaves, probes):
        return pass_.loss_fn(float_leaves, probes, int_leaves, batch)

    loss, vjp, acts = jax.vjp(loss_fn, float_leaves, probes, has_aux=True)
    acts = {name: acts[name] for name in pass_.shapes}

    def backward() -> Taps:
        # a numpy 1: a jax array would be one more program compiled, for a constant
        dleaves, dprobes = vjp(np.ones((), loss.dtype))
        return pass_.taps(loss, acts, dleaves, dprobes)

    return TappedForward(loss, acts, backward)


def intermediate_grads(
    forward: Forward, params: Any, batch: Any, *, jit: bool = False
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """``acts, grads``: every tapped value by name, and d loss / d each tapped value and each
    parameter leaf (named by :func:`param_names`), JAX's missing ``retain_grad``.

    ``forward(params, batch, tap)`` computes a scalar loss and marks intermediates with
    ``x = tap("x", x)``. Eagerly the gradients are bit for bit ``jax.grad``'s with the
    intermediate as an explicit input; ``jit=True`` compiles the pass (within 32 eps·scale).
    """
    taps = tapped_grads(forward, params, batch, jit=jit)
    return taps.acts, taps.grads


__all__ = [
    "Tap",
    "TappedForward",
    "Taps",
    "inlines_jit",
    "intermediate_grads",
    "param_names",
    "tapped_forward",
    "tapped_grads",
]
