"""Each backward rule instance as a statement of the derivation engine (no sympy here).

A statement is a dict (``axes``, ``inputs``, ``forward``, ``claims`` and optionally ``fixed`` /
``labels``) that :class:`derivations.Layer` takes as keyword arguments; its key is the SHA-256
of its canonical JSON. The generator looks each key up in the table of proved statements shipped
with the package (:mod:`jaxninja.backward.table`); :mod:`jaxninja.backward.prove` re-proves them.

Conventions: inputs are ``x`` (and ``w`` / ``e``), the output ``out``, its gradient ``dout``;
one size symbol ``n0, n1, ...`` per distinct axis, index letters ``i0, i1, ...``.
"""

from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction
from typing import Any

Statement = dict[str, Any]


def key(statement: Statement) -> str:
    """The statement's key in the proof table: SHA-256 of its canonical JSON, 16 hex digits."""
    text = json.dumps(statement, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sizes(rank: int) -> tuple[list[str], list[str]]:
    return [f"n{k}" for k in range(rank)], [f"i{k}" for k in range(rank)]


def _at(name: str, idx: list[str]) -> str:
    return f"{name}[{', '.join(idx)}]" if idx else name


def number(value: float) -> str:
    """An exact rational for the engine: -0.5 -> ``(-1/2)``."""
    frac = Fraction(value)
    text = str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"
    return f"({text})"


def unary(rank: int, forward: str, claim: str) -> Statement:
    """An elementwise rule of one input: ``forward`` and ``claim`` in ``x``/``out``/``dout``,
    ``forward`` with ``{x}`` for the indexed input."""
    sizes, idx = _sizes(max(rank, 1))
    return {
        "axes": sizes,
        "inputs": {"x": sizes},
        "forward": [f"{_at('out', idx)} = {forward.format(x=_at('x', idx))}"],
        "claims": {"x": claim},
    }


def binary(
    rank: int,
    forward: str,
    claims: dict[str, str],
    bcast: dict[str, tuple[int, ...]],
    constant: dict[str, float],
) -> Statement:
    """An elementwise rule of two inputs ``x`` and ``w`` at the output's rank: ``bcast[name]``
    lists the output axes where that operand has size 1 (broadcast: its claim is summed over
    them, ``sum(..., axis=...)``), ``constant`` a scalar literal operand (the engine's constant
    ``c``: only its sign is assumed)."""
    sizes, idx = _sizes(max(rank, 1))
    inputs: dict[str, list[str]] = {}
    at: dict[str, str] = {}
    ref: dict[str, str] = {}
    for name in ("x", "w"):
        if name in constant:
            at[name] = ref[name] = "c"
            continue
        kept = [k for k in range(len(sizes)) if k not in bcast.get(name, ())]
        inputs[name] = [sizes[k] for k in kept]
        at[name] = _at(name, [idx[k] for k in kept])
        sub = ", ".join(":" if k in kept else "None" for k in range(len(sizes)))
        ref[name] = f"{name}[{sub}]" if kept and len(kept) < len(sizes) else name
    out: Statement = {"axes": sizes, "inputs": inputs}
    if constant:  # the engine assumes only the constant's sign: one statement per sign
        value = next(iter(constant.values()))
        out["constants"] = {"c": "1" if value > 0 else "-1" if value < 0 else "0"}
    out["forward"] = [f"{_at('out', idx)} = {forward.format(**at)}"]
    out["claims"] = {}
    for name in inputs:
        text = re.sub(r"\b([xw])\b", lambda m: ref[m.group(1)], claims[name])
        axes = bcast.get(name, ())
        if axes and len(inputs[name]) == 0:
            text = f"sum({text})"
        elif axes:
            text = f"sum({text}, axis={axes[0] if len(axes) == 1 else tuple(axes)})"
        out["claims"][name] = text
    return out


def select(rank: int) -> Statement:
    """``select_n(p, x, w)``: ``w`` where the mask is set, else ``x``; the mask is not
    differentiated (it is a boolean)."""
    sizes, idx = _sizes(max(rank, 1))
    x, w, m = (_at(n, idx) for n in ("x", "w", "m"))
    return {
        "axes": sizes,
        "inputs": {"x": sizes, "w": sizes, "m": sizes},
        "fixed": ["m"],
        "forward": [f"{_at('out', idx)} = where({m} > 0, {w}, {x})"],
        "claims": {"x": "where(m > 0, 0, dout)", "w": "where(m > 0, dout, 0)"},
    }


def reduce_sum(rank: int, axes: tuple[int, ...]) -> Statement:
    """``out = x.sum(axes)``; its gradient ``dout`` broadcast back, stated as numpy does it:
    ``dout`` with the summed axes re-inserted (``dout[:, None]``), plus ``0 * x`` for the shape."""
    sizes, idx = _sizes(rank)
    kept = [i for k, i in enumerate(idx) if k not in axes]
    summed = ", ".join(idx[k] for k in axes)
    sub = ", ".join("None" if k in axes else ":" for k in range(rank))
    rhs = f"sum({_at('x', idx)}, {summed})"
    if not kept:  # a scalar output is a loss to the engine: stated as K copies, e[k] + sum
        return {
            "axes": [*sizes, "K"],
            "inputs": {"x": sizes, "e": ["K"]},
            "forward": [f"out[k] = e[k] + {rhs}"],
            "claims": {"x": "sum(dout) + 0 * x"},
        }
    return {
        "axes": sizes,
        "inputs": {"x": sizes},
        "forward": [f"{_at('out', kept)} = {rhs}"],
        "claims": {"x": f"dout[{sub}] + 0 * x"},
    }


def reduce_max(rank: int, axes: tuple[int, ...]) -> Statement:
    """``out = x.max(axes)``, differentiated as jax does: the gradient goes to the max's
    positions (``x == out``), a tie split evenly (divided by the count of positions). The
    engine states a max the output depends on as a line of its own, ``max(x[...], i1, ...)``
    over several indices at once (one max, as ``jnp.max(x, axis=(1, 2))``). A reduction of
    every axis (a scalar output, a loss to the engine) is not stated: NOT STATABLE."""
    if len(axes) >= rank:
        return {"rule": "reduce_max", "axes": list(axes), "rank": rank}
    sizes, idx = _sizes(rank)
    kept = [i for k, i in enumerate(idx) if k not in axes]
    summed = ", ".join(idx[k] for k in axes)
    sub = ", ".join("None" if k in axes else ":" for k in range(rank))
    axis = axes[0] if len(axes) == 1 else tuple(axes)
    at_max = f"(x == out[{sub}])"
    return {
        "axes": sizes,
        "inputs": {"x": sizes},
        "forward": [f"{_at('out', kept)} = max({_at('x', idx)}, {summed})"],
        "claims": {"x": f"{at_max} * (dout / sum{at_max[:-1]}, axis={axis}))[{sub}]"},
    }


def broadcast(out_rank: int, kept: tuple[int, ...]) -> Statement:
    """``out = broadcast(x)``: the output's axes ``kept`` are x's (unit axes dropped). The
    statement language needs every output index on the right: the new axes carry an input
    ``e`` that is added, ``out[i0, i1] = x[i1] + e[i0]`` (x's Jacobian is the broadcast's)."""
    sizes, idx = _sizes(out_rank)
    new = [k for k in range(out_rank) if k not in kept]
    summed = tuple(new)
    axis = summed[0] if len(summed) == 1 else summed
    rhs = _at("x", [idx[k] for k in kept])
    inputs = {"x": [sizes[k] for k in kept]}
    if new:
        inputs["e"] = [sizes[k] for k in new]
        rhs += " + " + _at("e", [idx[k] for k in new])
    claim = f"sum(dout, axis={axis})" if new else "dout"
    return {
        "axes": sizes,
        "inputs": inputs,
        "forward": [f"{_at('out', idx)} = {rhs}"],
        "claims": {"x": claim},
    }


def elementwise_identity() -> Statement:
    """``reshape`` / ``squeeze`` / ``copy`` / a float-to-float cast: the identity on the
    row-major sequence of elements, so the gradient is ``dout`` in the input's shape."""
    return unary(1, "{x}", "dout")


def transpose(perm: tuple[int, ...]) -> Statement:
    """``out = x.transpose(perm)``; the gradient is ``dout`` transposed back."""
    rank = len(perm)
    sizes, idx = _sizes(rank)
    letters = "abcdefgh"[:rank]
    out_letters = "".join(letters[p] for p in perm)
    return {
        "axes": sizes,
        "inputs": {"x": sizes},
        "forward": [f"{_at('out', [idx[p] for p in perm])} = {_at('x', idx)}"],
        "claims": {"x": f"einsum('{out_letters}->{letters}', dout)"},
    }


def dot_general(x_rank: int, w_rank: int, contract, batch) -> Statement:
    """``out = dot_general(x, w, (contract, batch))`` in einsum form; the claims are the two
    transposes the generator emits, as einsums (the same sums, any order)."""
    (xc, wc), (xb, wb) = contract, batch
    letters = iter("abcdefghjklmopqrstuvwxyz")
    x_l = [""] * x_rank
    w_l = [""] * w_rank
    for a, b in [*zip(xb, wb, strict=True), *zip(xc, wc, strict=True)]:
        x_l[a] = w_l[b] = next(letters)
    for k in range(x_rank):
        x_l[k] = x_l[k] or next(letters)
    for k in range(w_rank):
        w_l[k] = w_l[k] or next(letters)
    out_l = [x_l[a] for a in xb] + [c for k, c in enumerate(x_l) if k not in (*xb, *xc)]
    out_l += [c for k, c in enumerate(w_l) if k not in (*wb, *wc)]
    size = {c: f"n_{c}" for c in dict.fromkeys(x_l + w_l)}
    summed = [x_l[a] for a in xc]
    prod = f"{_at('x', [f'i{c}' for c in x_l])} * {_at('w', [f'i{c}' for c in w_l])}"
    rhs = f"sum({prod}, {', '.join(f'i{c}' for c in summed)})" if summed else prod
    o, xs, ws = "".join(out_l), "".join(x_l), "".join(w_l)
    return {
        "axes": list(size.values()),
        "inputs": {"x": [size[c] for c in x_l], "w": [size[c] for c in w_l]},
        "forward": [f"{_at('out', [f'i{c}' for c in out_l])} = {rhs}"],
        "claims": {
            "x": f"einsum('{o},{ws}->{xs}', dout, w)",
            "w": f"einsum('{xs},{o}->{ws}', x, dout)",
        },
    }


def embedding(index_rank: int) -> Statement:
    """``out = C[x]`` for integer ``x`` of ``index_rank`` axes, a row of ``C`` (V, E) each:
    the gradient scatters-adds ``dout`` into the rows, stated with ``one_hot``."""
    sizes, idx = _sizes(index_rank)
    lead = "".join("abcdfgh"[k] for k in range(index_rank))
    return {
        "axes": [*sizes, "V", "E"],
        "inputs": {"C": ["V", "E"]},
        "labels": {"x": [sizes, "V"]},
        "forward": [f"{_at('out', [*idx, 'e'])} = sum(one_hot({_at('x', idx)}, v) * C[v, e], v)"],
        "claims": {"C": f"einsum('{lead}v,{lead}e->ve', one_hot(x), dout)"},
    }


def take(rank: int) -> Statement:
    """``out[i] = x[i, y[i]]`` (take along the last axis of a 2-D ``x``, or the lecture's
    ``logprobs[range(n), yb]``): the gradient scatters ``dout`` to each row's picked column."""
    del rank
    return {
        "axes": ["n0", "V"],
        "inputs": {"x": ["n0", "V"]},
        "labels": {"y": [["n0"], "V"]},
        "forward": ["out[i0] = sum(one_hot(y[i0], v) * x[i0, v], v)"],
        "claims": {"x": "dout[:, None] * one_hot(y)"},
    }


def _bounds(axes: list[str]) -> dict[str, int]:
    """The exact check's sizes for a shifted statement: 3 for each length of the shifted axis
    (every order of short and long parts), 2 for the other axes (they only repeat the same
    arithmetic), keeping the check within the engine's budget."""
    return {a: 2 if a.startswith("n") else 3 for a in axes}


def slice_(rank: int, cuts: dict[int, tuple[bool, bool]]) -> Statement:
    """``out = x[..., lo:hi, ...]`` (stride 1): ``cuts[k]`` says whether axis ``k`` loses
    elements at its start and at its end. Stated with the language's shifted reads, sizes as
    symbols: the kept length ``M<k>``, the cut ``S<k>`` before and ``E<k>`` after (x's length
    their sum). A cut start is a read at ``i + S`` (the gradient reads ``dout[j - S]``, zero
    outside dout): PROVED; an uncut start reads ``x[i % N]`` (the language infers an index's
    range from a plain read, and x is longer than out), so that claim is CHECKED exactly in the
    engine's size range (:func:`_bounds`), not proved for every size."""
    axes: list[str] = []
    sizes: dict[str, str] = {}
    x_shape: list[str] = []
    out_shape: list[str] = []
    read: list[str] = []
    back: list[str] = []
    for k in range(rank):
        i = f"i{k}"
        if k not in cuts:
            axes.append(f"n{k}")
            x_shape.append(f"n{k}")
            out_shape.append(f"n{k}")
            read.append(i)
            back.append(i)
            continue
        start, end = cuts[k]
        parts = [f"S{k}"] * start + [f"M{k}"] + [f"E{k}"] * end
        axes += parts
        sizes[f"N{k}"] = " + ".join(parts)
        x_shape.append(f"N{k}")
        out_shape.append(f"M{k}")
        read.append(f"{i} + S{k}" if start else f"{i} % N{k}")
        back.append(f"{i} - S{k}" if start else f"{i} % N{k}")
    idx = [f"i{k}" for k in range(rank)]
    return {
        "axes": axes,
        "check_sizes": _bounds(axes),
        "sizes": sizes,
        "inputs": {"x": x_shape},
        "shapes": {"out": out_shape},
        "forward": [f"{_at('out', idx)} = {_at('x', read)}"],
        "claims": {"x": f"{_at('dx', idx)} = {_at('dout', back)}"},
    }


def concatenate(rank: int, axis: int, parts: int) -> Statement:
    """``out = concatenate([x0, x1, ...], axis)``: part ``p`` is read at ``i - (P0 + ... +
    P<p-1>)``, zero outside it, so the sum of the reads is the concatenation. Its gradient is
    ``dout`` read at ``j + P0 + ...`` (PROVED); the first part is read at ``i % N`` (its index
    would otherwise run over the first part's length only), so its claim is CHECKED exactly in
    the engine's size range."""
    sizes, idx = _sizes(rank)
    lengths = [f"P{p}" for p in range(parts)]
    axes = [s for k, s in enumerate(sizes) if k != axis]
    axes[axis:axis] = lengths
    inputs, reads, claims = {}, [], {}
    for p in range(parts):
        shape = [lengths[p] if k == axis else s for k, s in enumerate(sizes)]
        inputs[f"x{p}"] = shape
        offset = " + ".join(lengths[:p])
        at = [f"{i} - ({offset})" if k == axis and p else i for k, i in enumerate(idx)]
        if p == 0:
            at[axis] = f"{idx[axis]} % N"
        reads.append(_at(f"x{p}", at))
        back = [f"{i} + {offset}" if k == axis and p else i for k, i in enumerate(idx)]
        if p == 0:
            back[axis] = f"{idx[axis]} % P0"
        claims[f"x{p}"] = f"{_at(f'dx{p}', idx)} = {_at('dout', back)}"
    out_shape = ["N" if k == axis else s for k, s in enumerate(sizes)]
    return {
        "axes": axes,
        "check_sizes": _bounds(axes),
        "sizes": {"N": " + ".join(lengths)},
        "inputs": inputs,
        "shapes": {"out": out_shape},
        "forward": [f"{_at('out', idx)} = {' + '.join(reads)}"],
        "claims": claims,
    }
