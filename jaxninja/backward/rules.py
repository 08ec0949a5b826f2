"""One backward rule per primitive, written the way JAX transposes it (so that eager rows can be
bit-exact against ``jax.grad``), each with the statement of the derivation engine that proves it.

A rule gets the equation and the generator (:class:`jaxninja.backward.emit.Gen`): ``g.val(v)``
is Python for a forward value (recomputed if untapped), ``g.ct(v)`` its gradient's name, and
``g.add(v, expr, eqn, statement)`` emits ``dv = expr`` (or ``dv += expr`` for a second use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from jaxninja.backward import statements as st
from jaxninja.backward.trace import Eqn, Lit, Var
from jaxninja.errors import BackwardError

if TYPE_CHECKING:
    from jaxninja.backward.emit import Gen

Rule = Callable[["Gen", Eqn, str], None]

# unary elementwise rules: (code with {d} {x} {out}, engine forward with {x}, engine claim)
UNARY = {
    "neg": ("-{d}", "-{x}", "-dout"),
    "exp": ("{d} * {out}", "exp({x})", "dout * out"),
    "log": ("{d} / {x}", "log({x})", "dout / x"),
    "tanh": ("{d} * (1 - {out}) + {d} * (1 - {out}) * {out}", "tanh({x})",
             "dout * (1 - out) + dout * (1 - out) * out"),
    "logistic": ("{d} * ({out} * (1 - {out}))", "sigmoid({x})", "dout * (out * (1 - out))"),
    "sqrt": ("{d} * (0.5 / {out})", "sqrt({x})", "dout * (1/2 / out)"),
    "rsqrt": ("{d} * (-0.5 * ({out} / {x}))", "{x}**(-1/2)", "dout * (-1/2 * (out / x))"),
    "erf": ("2 / np.sqrt(np.pi) * ({d} * jnp.exp(-({x} * {x})))", "erf({x})",
            "2 / sqrt(pi) * (dout * exp(-(x * x)))"),
    "erfc": ("-2 / np.sqrt(np.pi) * ({d} * jnp.exp(-({x} * {x})))", "1 - erf({x})",
             "-2 / sqrt(pi) * (dout * exp(-(x * x)))"),
    "square": ("{d} * (2 * {x})", "{x}**2", "dout * (2 * x)"),
    "abs": ("jnp.where({x} >= 0, {d}, 0.0) + -jnp.where({x} >= 0, 0.0, {d})", "abs({x})",
            "dout * ((x >= 0) - (x < 0))"),
    "copy": ("{d}", "{x}", "dout"),
}  # fmt: skip


def _fill(g: Gen, code: str, d: str, **refs) -> str:
    """``code`` with ``{d}`` the gradient and each other field the value it names (only the
    values the code reads are marked as needed by the backward)."""
    values = {k: g.val(v) for k, v in refs.items() if "{" + k + "}" in code}
    return code.format(d=d, **values)


def _unary(g: Gen, e: Eqn, d: str) -> None:
    x = e.ins[0]
    code, fwd, claim = UNARY[e.prim]
    expr = _fill(g, code, d, x=x, out=e.outs[0])
    g.add(x, expr, e, st.unary(len(x.shape), fwd, claim))


def _integer_pow(g: Gen, e: Eqn, d: str) -> None:
    x, k = e.ins[0], e.params["y"]
    power = g.val(x) if k == 2 else f"{g.val(x)}**{k - 1}"
    claim = f"dout * ({k} * x**({k - 1}))"
    g.add(x, f"{d} * ({k} * {power})", e, st.unary(len(x.shape), f"{{x}}**({k})", claim))


def _pow(g: Gen, e: Eqn, d: str) -> None:
    x, y = e.ins
    if not isinstance(y, Lit) or isinstance(x, Lit):
        g.refuse(e, "pow with a computed exponent")
    if isinstance(y, Lit) and y.value == 0:
        return g.zero(x, e, "x**0 does not depend on x")
    yv = float(y.value)
    expr = f"{d} * ({yv!r} * {g.val(x)}**{yv - 1!r})"
    claim = f"dout * ({st.number(yv)} * x**{st.number(yv - 1)})"
    g.add(x, expr, e, st.unary(len(x.shape), f"{{x}}**{st.number(yv)}", claim))


# jax's max/min rule: the gradient goes to the operand equal to the result, halved on a tie
_TIE = "{{d}} * jnp.where({{{a}}} == {{out}}, jnp.where({{{b}}} == {{out}}, 0.5, 1.0), 0.0)"


def _binary(g: Gen, e: Eqn, d: str) -> None:
    """add, sub, mul, div: a literal operand (a scalar) gets no gradient."""
    x, w = e.ins
    rank = len(e.outs[0].shape)
    rules = {
        "add": ({"x": ("{d}", "dout"), "w": ("{d}", "dout")}, "{x} + {w}"),
        "sub": ({"x": ("{d}", "dout"), "w": ("-{d}", "-dout")}, "{x} - {w}"),
        "mul": ({"x": ("{d} * {w}", "dout * w"), "w": ("{x} * {d}", "x * dout")}, "{x} * {w}"),
        "div": ({"x": ("{d} / {w}", "dout / w"),
                 "w": ("-({d} * {w}**-2 * {x})", "-(dout * w**(-2) * x)")}, "{x} / {w}"),
        "max": ({"x": (_TIE.format(a="x", b="w"), "dout * ((x > w) + (x >= w)) / 2"),
                 "w": (_TIE.format(a="w", b="x"), "dout * ((w > x) + (w >= x)) / 2")},
                "maximum({x}, {w})"),
        "min": ({"x": (_TIE.format(a="x", b="w"), "dout * ((x < w) + (x <= w)) / 2"),
                 "w": (_TIE.format(a="w", b="x"), "dout * ((w < x) + (w <= x)) / 2")},
                "minimum({x}, {w})"),
    }  # fmt: skip
    parts, fwd = rules[e.prim]
    out = e.outs[0]
    claims = {k: c for k, (_, c) in parts.items()}
    bcast = {n: _broadcast_axes(v, out) for n, v in (("x", x), ("w", w)) if isinstance(v, Var)}
    constant = {n: float(v.value) for n, v in (("x", x), ("w", w)) if isinstance(v, Lit)}
    statement = st.binary(rank, fwd, claims, bcast, constant)
    for name, operand in (("x", x), ("w", w)):
        if isinstance(operand, Var):
            code = _fill(g, parts[name][0], d=d, x=x, w=w, out=out)
            axes = bcast[name]
            note = ""
            inner = code if code.isidentifier() else f"({code})"
            if axes and len(operand.shape) == 0:
                code, note = f"{inner}.sum()", "shape ()"
            elif axes:
                code = f"{inner}.sum({axes}, keepdims=True)"
                note = f"shape {tuple(operand.shape)}"
            g.add(operand, code, e, statement, note=note)


def _broadcast_axes(operand: Var, out: Var) -> tuple[int, ...]:
    """The output axes along which ``operand`` (size 1 there, or a scalar) was broadcast."""
    if len(operand.shape) == 0:
        return tuple(range(len(out.shape)))
    if len(operand.shape) != len(out.shape):
        raise BackwardError(f"{operand.name}: rank {len(operand.shape)} against {out.shape}")
    pairs = zip(operand.shape, out.shape, strict=True)
    return tuple(k for k, (a, b) in enumerate(pairs) if a != b)


def _select_n(g: Gen, e: Eqn, d: str) -> None:
    p, *cases = e.ins
    if len(cases) != 2 or not p.dtype == np.bool_:
        g.refuse(e, "select_n with more than two cases")
    x, w = cases
    statement = st.select(len(e.outs[0].shape))
    pv = g.val(p)
    if isinstance(x, Var):
        g.add(x, f"jnp.where({pv}, 0.0, {d})", e, statement)
    if isinstance(w, Var):
        g.add(w, f"jnp.where({pv}, {d}, 0.0)", e, statement)


def _reduce_sum(g: Gen, e: Eqn, d: str) -> None:
    x, axes = e.ins[0], tuple(e.params["axes"])
    shape = tuple(x.shape)
    expr = f"jnp.broadcast_to(jnp.expand_dims({d}, {axes}), {shape})"
    g.add(x, expr, e, st.reduce_sum(len(shape), axes), note=f"shape {shape}")


def _reduce_max(g: Gen, e: Eqn, d: str) -> None:
    x, axes, out = e.ins[0], tuple(e.params["axes"]), e.outs[0]
    at_max = g.fresh_name("at_max")
    xv, ov = g.val(x), g.val(out)
    g.line(f"{at_max} = ({xv} == jnp.expand_dims({ov}, {axes})).astype({xv}.dtype)")
    expr = f"jnp.expand_dims({d} / {at_max}.sum({axes}), {axes}) * {at_max}"
    statement = st.reduce_max(len(x.shape), axes)
    g.add(x, expr, e, statement, note="the gradient goes where the max was, ties split")


def _broadcast_in_dim(g: Gen, e: Eqn, d: str) -> None:
    x, out = e.ins[0], e.outs[0]
    if isinstance(x, Lit):
        return
    bdims = tuple(e.params["broadcast_dimensions"])
    unit = [k for k, s in enumerate(x.shape) if s == 1 and out.shape[bdims[k]] != 1]
    kept = tuple(bdims[k] for k in range(len(x.shape)) if k not in unit)
    axes = tuple(k for k in range(len(out.shape)) if k not in kept)
    shape = tuple(x.shape)
    if not axes:
        expr = f"{d}.reshape({shape})" if shape != out.shape else d
    elif len(shape) == len(out.shape):
        expr = f"{d}.sum({axes}, keepdims=True)"
    else:
        expr = f"{d}.sum({axes}).reshape({shape})"
    g.add(x, expr, e, st.broadcast(len(out.shape), kept), note=f"shape {shape}")


def _reshape(g: Gen, e: Eqn, d: str) -> None:
    x = e.ins[0]
    if isinstance(x, Lit):
        return
    g.add(x, f"{d}.reshape({tuple(x.shape)})", e, st.elementwise_identity())


def _transpose(g: Gen, e: Eqn, d: str) -> None:
    x, perm = e.ins[0], tuple(e.params["permutation"])
    inverse = tuple(int(k) for k in np.argsort(perm))
    g.add(x, f"{d}.transpose({inverse})", e, st.transpose(perm))


def _convert(g: Gen, e: Eqn, d: str) -> None:
    x = e.ins[0]
    if isinstance(x, Lit) or not x.is_float:
        return
    g.add(x, f"{d}.astype({g.val(x)}.dtype)", e, st.elementwise_identity())


def _ranges(*lengths: int) -> list[list[int]]:
    out, start = [], 0
    for n in lengths:
        out.append(list(range(start, start + n)))
        start += n
    return out


def _dot_transpose(g_name, y_name, g_shape, y_shape, x_ndim, dims, swap_ans):
    """JAX's transpose of dot_general with respect to its first operand: a dot_general of the
    gradient with the other operand, then a transpose (left out when it is the identity)."""
    (x_contract, y_contract), (x_batch, y_batch) = dims
    y_ndim = len(y_shape)
    x_kept = [k for k in range(x_ndim) if k not in (*x_contract, *x_batch)]
    y_kept = [k for k in range(y_ndim) if k not in (*y_contract, *y_batch)]
    if swap_ans:
        ans_batch, ans_y, _ = _ranges(len(x_batch), len(y_kept), len(x_kept))
    else:
        ans_batch, _, ans_y = _ranges(len(x_batch), len(x_kept), len(y_kept))
    new = ((tuple(ans_y), tuple(y_kept)), (tuple(ans_batch), tuple(y_batch)))
    sorted_by_y = [x_contract[k] for k in np.argsort(y_contract)]
    out_axes = tuple(int(k) for k in np.argsort(list(x_batch) + x_kept + sorted_by_y))
    merged = _merge_contracted(g_name, y_name, g_shape, y_shape, new, out_axes)
    if merged is not None:
        return merged
    expr = f"lax.dot_general({g_name}, {y_name}, {new})"
    if out_axes != tuple(range(len(out_axes))):
        expr += f".transpose({out_axes})"
    return expr


def _merge_contracted(g_name, y_name, g_shape, y_shape, dims, out_axes):
    """The 2-D matmul the hand-written backward writes (``flat.reshape(-1, F).T @
    dhprebn.reshape(-1, H)``) where the transpose contracts two or more leading axes of both
    operands and keeps one (a Linear's ``dW`` over (B, T, H)); None elsewhere. XLA's CPU compiler
    otherwise copies one operand into a transposed layout first (the WaveNet's two 3-D ``dW``
    lines cost ~5% of a training step). The same sums; their order inside the matmul may differ
    from jax.grad's dot_general (so not claimed bit-exact)."""
    (gc, yc), (gb, yb) = dims
    lead = tuple(range(len(gc)))
    if gb or yb or len(gc) < 2 or gc != lead or yc != lead:
        return None
    if len(g_shape) != len(gc) + 1 or len(y_shape) != len(yc) + 1:
        return None
    rows = int(np.prod(g_shape[:-1]))
    g2 = f"{g_name}.reshape(({rows}, {g_shape[-1]}))"
    y2 = f"{y_name}.reshape(({rows}, {y_shape[-1]}))"
    return f"{y2}.T @ {g2}" if out_axes == (1, 0) else f"{g2}.T @ {y2}"


def _dot_general(g: Gen, e: Eqn, d: str) -> None:
    x, w = e.ins
    contract, batch = e.params["dimension_numbers"]
    dims = ((tuple(contract[0]), tuple(contract[1])), (tuple(batch[0]), tuple(batch[1])))
    statement = st.dot_general(len(x.shape), len(w.shape), dims[0], dims[1])
    xv, wv = g.val(x), g.val(w)
    out = tuple(e.outs[0].shape)
    if isinstance(x, Var):
        expr = _dot_transpose(d, wv, out, tuple(w.shape), len(x.shape), dims, False)
        g.add(x, expr, e, statement, note=_matmul_note(d, wv, dims, "x"))
    if isinstance(w, Var):
        swapped = ((dims[0][1], dims[0][0]), (dims[1][1], dims[1][0]))
        expr = _dot_transpose(d, xv, out, tuple(x.shape), len(w.shape), swapped, True)
        g.add(w, expr, e, statement, note=_matmul_note(d, xv, dims, "w"))


def _matmul_note(d: str, other: str, dims, which: str) -> str:
    """The familiar form of a 2-D matmul's gradient, for the comment."""
    if dims == (((1,), (0,)), ((), ())):
        return f"{d} @ {other}.T" if which == "x" else f"{other}.T @ {d}"
    return ""


def _gather(g: Gen, e: Eqn, d: str) -> None:
    g.gather_rule(e, d)


def _concatenate(g: Gen, e: Eqn, d: str) -> None:
    """Each part's gradient is its stretch of ``dout`` along the axis (JAX's transpose: a slice)."""
    axis, start = e.params["dimension"], 0
    rank = len(e.outs[0].shape)
    if any(isinstance(part, Lit) for part in e.ins):
        g.refuse(e, "concatenate with a literal part")
    statement = st.concatenate(rank, axis, len(e.ins))
    for part in e.ins:
        size = part.shape[axis]
        if part.is_float:
            index = ", ".join([":"] * axis + [f"{start}:{start + size}"])
            g.add(part, f"{d}[{index}]", e, statement)
        start += size


def _slice(g: Gen, e: Eqn, d: str) -> None:
    """``x[..., lo:hi, ...]``'s gradient is ``dout`` padded back with zeros (JAX's transpose:
    ``pad``); a stride other than 1 is refused."""
    x = e.ins[0]
    strides = e.params.get("strides")
    if strides is not None and any(s != 1 for s in strides):
        g.refuse(e, "slice with a stride")
    start, limit = tuple(e.params["start_indices"]), tuple(e.params["limit_indices"])
    cuts = {
        k: (lo > 0, hi < n)
        for k, (lo, hi, n) in enumerate(zip(start, limit, x.shape, strict=True))
        if lo > 0 or hi < n
    }
    pads = tuple((lo, n - hi) for lo, hi, n in zip(start, limit, x.shape, strict=True))
    g.add(x, f"jnp.pad({d}, {pads})", e, st.slice_(len(x.shape), cuts))


RULES: dict[str, Rule] = {
    **dict.fromkeys(UNARY, _unary),
    **dict.fromkeys(("add", "sub", "mul", "div", "max", "min"), _binary),
    "integer_pow": _integer_pow,
    "pow": _pow,
    "select_n": _select_n,
    "reduce_sum": _reduce_sum,
    "reduce_max": _reduce_max,
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "squeeze": _reshape,
    "expand_dims": _reshape,
    "transpose": _transpose,
    "convert_element_type": _convert,
    "dot_general": _dot_general,
    "gather": _gather,
    "concatenate": _concatenate,
    "slice": _slice,
}
