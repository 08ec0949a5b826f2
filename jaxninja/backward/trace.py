"""A model's forward as a flat list of named equations: what the backward generator reads.

``forward(params, batch, tap)`` is traced with :func:`jax.make_jaxpr`; ``tap(name, x)`` binds a
primitive of its own (``tap``, the identity) so that each tapped value keeps its name in the
jaxpr. Nested ``jit`` (``pjit``), ``custom_jvp_call`` and ``custom_vjp_call`` are inlined (their
primal jaxpr: the derivative is ours to write). Every value gets a readable Python name: a tap's
name (``l1.hprebn`` -> ``l1_hprebn``), a parameter's path (``l1.W`` -> ``l1_W``), a batch leaf
(``x, y`` for a pair), and an untapped value its operation's name with a counter (``exp1``).
"""

from __future__ import annotations

import json
import keyword
import linecache
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from jax._src import source_info_util
from jax.extend.core import Literal, Primitive

from jaxninja.errors import BackwardError

tap_p = Primitive("tap")
tap_p.def_abstract_eval(lambda x, *, name: x)
tap_p.def_impl(lambda x, *, name: x)

INLINED = {"pjit": "jaxpr", "jit": "jaxpr", "custom_jvp_call": "call_jaxpr",
           "custom_vjp_call": "call_jaxpr", "closed_call": "call_jaxpr"}  # fmt: skip
SHORT = {"reduce_sum": "sum", "reduce_max": "max", "dot_general": "matmul",
         "broadcast_in_dim": "bcast", "convert_element_type": "cast", "integer_pow": "pow",
         "select_n": "select", "concatenate": "concat", "stop_gradient": "nograd"}  # fmt: skip


class Var:
    """A value of the flattened forward: its name, shape, dtype, and what it is."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: Any, kind: str, row: str = ""):
        self.name, self.shape, self.dtype, self.kind, self.row = name, shape, dtype, kind, row
        self.rows: list[str] = [row] if row else []  # the check's row names it answers
        self.source = ""  # how the backward gets it: acts[...], params[...], or recomputed

    @property
    def is_float(self) -> bool:
        return bool(np.issubdtype(self.dtype, np.inexact))

    def __repr__(self) -> str:
        return self.name


class Lit(NamedTuple):
    """A literal operand (a scalar constant of the forward)."""

    value: Any
    dtype: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def is_float(self) -> bool:
        return bool(np.issubdtype(self.dtype, np.inexact))


Ref = Var | Lit


class Eqn(NamedTuple):
    """One primitive application of the flattened forward."""

    prim: str
    params: dict[str, Any]
    ins: list[Ref]
    outs: list[Var]
    line: int  # the forward's source line (0: unknown)
    text: str  # that line's source text, stripped


class Traced(NamedTuple):
    """The flattened forward: its equations in order, its inputs and its loss."""

    eqns: list[Eqn]
    params: list[Var]  # one per parameter leaf, param_names order
    batch: list[Var]  # one per batch leaf
    taps: dict[str, Var]  # tap name -> the value it names
    loss: Ref
    param_access: list[str]  # "params['l1']['W']" per parameter leaf
    batch_access: list[str]


def identifier(text: str) -> str:
    """A readable Python identifier for a tap or parameter name: ``l1.hprebn`` -> ``l1_hprebn``."""
    name = re.sub(r"\W", "_", text)
    if not name or name[0].isdigit():
        name = "v_" + name
    return name + "_" if keyword.iskeyword(name) else name


def access(path: tuple) -> str:
    """Python that reads a pytree leaf from its key path: ``["l1"]["W"]``, ``.C``, ``[0]``."""
    out = ""
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            out += f"[{json.dumps(key.key)}]" if isinstance(key.key, str) else f"[{key.key!r}]"
        elif isinstance(key, jax.tree_util.GetAttrKey):
            out += f".{key.name}"
        elif isinstance(key, jax.tree_util.SequenceKey):
            out += f"[{key.idx}]"
        else:
            raise BackwardError(f"cannot name a pytree leaf by its key {key!r}")
    return out


class _Namer:
    """Unique identifiers: a wanted name, or it with a counter."""

    def __init__(self) -> None:
        self.used = {"params", "batch", "acts", "jnp", "lax", "jax", "np", "grads", "dtype"}
        self.counts: dict[str, int] = {}

    def take(self, wanted: str) -> str:
        name, k = wanted, 1
        while name in self.used or ("d" + name) in self.used:
            k += 1
            name = f"{wanted}_{k}"
        self.used |= {name, "d" + name}
        return name

    def fresh(self, op: str) -> str:
        base = SHORT.get(op, op)
        while True:
            self.counts[base] = self.counts.get(base, 0) + 1
            name = f"{base}{self.counts[base]}"
            if name not in self.used and "d" + name not in self.used:
                self.used |= {name, "d" + name}
                return name


def _where(eqn: Any) -> tuple[int, str]:
    """The user's source line of a jaxpr equation, and its text."""
    frame = source_info_util.user_frame(eqn.source_info.traceback)
    if frame is None:
        return 0, ""
    text = linecache.getline(frame.file_name, frame.start_line).strip()
    return frame.start_line, text


def trace(forward: Callable, params: Any, batch: Any) -> Traced:
    """Trace ``forward`` at the shapes of ``params`` and ``batch`` and flatten it."""
    from jaxninja.gradcheck.taps import param_names

    def tap(name: Any, value: Any) -> Any:
        if not isinstance(name, str):
            raise BackwardError(f"tap names must be strings, got {name!r}")
        return tap_p.bind(jax.numpy.asarray(value), name=name)

    closed = jax.make_jaxpr(lambda p, b: forward(p, b, tap))(params, batch)
    namer = _Namer()
    env: dict[Any, Ref] = {}
    pleaves = jax.tree_util.tree_flatten_with_path(params)[0]
    bleaves = jax.tree_util.tree_flatten_with_path(batch)[0]
    pvars, bvars = [], []
    for (path, leaf), row, jvar in zip(
        pleaves, param_names(params), closed.jaxpr.invars[: len(pleaves)], strict=True
    ):
        var = Var(namer.take(identifier(row)), np.shape(leaf), jvar.aval.dtype, "param", row)
        var.source = "params" + access(path)
        env[jvar] = var
        pvars.append(var)
    pair = isinstance(batch, tuple | list) and len(bleaves) == 2 and len(batch) == 2
    for i, ((path, leaf), jvar) in enumerate(
        zip(bleaves, closed.jaxpr.invars[len(pleaves) :], strict=True)
    ):
        keys = jax.tree_util.keystr(path, simple=True, separator="_")
        wanted = ("x", "y")[i] if pair else identifier(f"batch_{keys}" if keys else "batch")
        var = Var(namer.take(wanted), np.shape(leaf), jvar.aval.dtype, "batch")
        var.source = "batch" + access(path)
        env[jvar] = var
        bvars.append(var)
    eqns: list[Eqn] = []
    taps: dict[str, Var] = {}
    _flatten(closed.jaxpr, closed.consts, env, eqns, taps, namer)
    loss = _ref(env, closed.jaxpr.outvars[0])
    return Traced(
        eqns, pvars, bvars, taps, loss, [v.source for v in pvars], [v.source for v in bvars]
    )


def _ref(env: dict, atom: Any) -> Ref:
    if isinstance(atom, Literal):
        return Lit(np.asarray(atom.val).item(), atom.aval.dtype)
    return env[atom]


def _const(value: Any) -> Lit:
    arr = np.asarray(value)
    if arr.shape != ():
        raise BackwardError(
            f"the forward closes over a constant array of shape {arr.shape}: pass it in params "
            "or batch, or compute it inside forward"
        )
    return Lit(arr.item(), arr.dtype)


def _flatten(jaxpr, consts, env, eqns, taps, namer, outer=(0, "")) -> None:
    """Append ``jaxpr``'s equations to ``eqns``, inlining calls, naming every new value; an
    inlined equation without a line of the user's own gets its call's (``outer``)."""
    for cvar, value in zip(jaxpr.constvars, consts, strict=True):
        env[cvar] = _const(value)
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in INLINED:
            inner = eqn.params[INLINED[name]]
            inner_jaxpr = getattr(inner, "jaxpr", inner)
            inner_consts = getattr(inner, "consts", ())
            if len(inner_jaxpr.invars) != len(eqn.invars):
                line, text = _where(eqn)
                raise BackwardError(f"cannot inline {name} (forward line {line}: {text})")
            sub = {v: _ref(env, a) for v, a in zip(inner_jaxpr.invars, eqn.invars, strict=True)}
            where = _where(eqn)
            _flatten(
                inner_jaxpr, inner_consts, sub, eqns, taps, namer, where if where[0] else outer
            )
            for out, inner_out in zip(eqn.outvars, inner_jaxpr.outvars, strict=True):
                env[out] = _ref(sub, inner_out)
            continue
        ins = [_ref(env, a) for a in eqn.invars]
        if name == "tap":
            _tap(eqn, ins[0], env, eqns, taps, namer)
            continue
        line, text = _where(eqn)
        if not line:
            line, text = outer
        outs = []
        for out in eqn.outvars:
            var = Var(namer.fresh(name), tuple(out.aval.shape), out.aval.dtype, "value")
            env[out] = var
            outs.append(var)
        eqns.append(Eqn(name, dict(eqn.params), ins, outs, line, text))


def _tap(eqn, value: Ref, env, eqns, taps, namer) -> None:
    """A tap names the value it marks: the defining equation's output is renamed (an
    untapped value, used nowhere else before its tap); otherwise the tap is an identity."""
    tap_name = eqn.params["name"]
    if tap_name in taps:
        raise BackwardError(f"tap({tap_name!r}) called twice: a name may be tapped once")
    line, text = _where(eqn)
    fresh = isinstance(value, Var) and value.kind == "value" and not value.rows
    if fresh and not any(value in e.ins for e in eqns):
        namer.used.discard(value.name)
        value.name = namer.take(identifier(tap_name))
        value.kind, value.rows, value.row = "tap", [tap_name], tap_name
        value.source = f"acts[{json.dumps(tap_name)}]"
        env[eqn.outvars[0]] = value
        taps[tap_name] = value
        return
    out = Var(
        namer.take(identifier(tap_name)), np.shape(value), eqn.outvars[0].aval.dtype, "tap",
        tap_name,
    )  # fmt: skip
    out.source = f"acts[{json.dumps(tap_name)}]"
    env[eqn.outvars[0]] = out
    taps[tap_name] = out
    eqns.append(Eqn("copy", {}, [value], [out], line, text))
