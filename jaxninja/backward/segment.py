"""``--fuse A:B``: the part of the traced forward from the value ``A`` to the value ``B``, and
that part as one multi-line statement of the derivation engine (no sympy here).

The segment is every equation on a path from ``A`` to ``B``; each value it computes but ``B``
(its inner values) must be used inside it only, so that one closed form can stand in for its
line-by-line chain. The statement names each line after the traced value (the user's tap
names), drops size-1 axes (a ``keepdims`` sum is a line over the kept axes), folds
broadcasts and unit reshapes into the lines that read them, and names the sizes ``n``, ``D``,
... by the traced sizes (the generated backward is for those sizes): a literal ``1/32`` that is
``1 / n`` at the traced ``n = 32`` is stated as ``1/n``, so the derived form reads as the
lecture's. A primitive the statement language cannot say is a one-line refusal.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from jaxninja.backward.statements import number
from jaxninja.backward.trace import Eqn, Lit, Ref, Traced, Var, identifier
from jaxninja.errors import BackwardError

if TYPE_CHECKING:
    from jaxninja.backward.emit import Gen

SIZE_NAMES = ("n", "D", "E", "F", "G", "K", "M", "P", "Q", "R")
ALIASES = {"copy", "convert_element_type", "reshape", "squeeze", "expand_dims", "broadcast_in_dim"}
FUNCTIONS = {"exp": "exp", "log": "log", "tanh": "tanh", "sqrt": "sqrt", "logistic": "sigmoid",
             "abs": "abs", "erf": "erf"}  # fmt: skip
INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


class Segment(NamedTuple):
    """The equations from ``a`` to ``b`` (forward order) and what they compute."""

    spec: str  # "A:B" as asked
    a: Var
    b: Var
    eqns: list[Eqn]
    inner: set[Var]  # every value the segment computes but b
    untapped: tuple[str, ...]  # the taps of inner values: no gradient of theirs is computed


class Stated(NamedTuple):
    """A segment as an engine statement, and what its kernel is called with."""

    statement: dict[str, Any]  # keyword arguments of derivations.Layer (no claims)
    inputs: list[tuple[str, Var]]  # the statement's float inputs, a first, and their values
    labels: list[tuple[str, str]]  # the statement's integer labels and their Python
    upstream: str | None  # the upstream gradient's name in the statement; None: b is the loss
    sized: bool = False  # a literal was stated as a size: the form holds at the traced sizes


def parse_spec(text: str) -> tuple[str, str]:
    """``"A:B"`` -> ``("A", "B")``; anything else is a one-line error."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        shown = text if text.isprintable() else repr(text)
        raise BackwardError(f"--fuse {shown}: give two tap names, A:B (e.g. logits:loss)")
    return parts[0].strip(), parts[1].strip()


def _value(traced: Traced, name: str, spec: str) -> Var:
    if name in traced.taps:
        return traced.taps[name]
    if name == "loss" and isinstance(traced.loss, Var):
        return traced.loss
    taps = ", ".join(traced.taps) or "none"
    raise BackwardError(f"--fuse {spec}: {name!r} is not a tap of the forward (taps: {taps})")


def find(traced: Traced, spec: str) -> Segment:
    """The segment ``spec`` names, or a one-line error: a name that is not a tap (``loss`` is
    the forward's result), ``B`` not downstream of ``A``, an inner value used outside."""
    a_name, b_name = parse_spec(spec)
    a, b = _value(traced, a_name, spec), _value(traced, b_name, spec)
    if a is b:
        raise BackwardError(f"--fuse {spec}: A and B are the same value")
    if not a.is_float:
        raise BackwardError(f"--fuse {spec}: {a_name} is not a float value")
    below = {a}
    for e in traced.eqns:
        if any(isinstance(x, Var) and x in below for x in e.ins):
            below |= set(e.outs)
    if b not in below:
        raise BackwardError(f"--fuse {spec}: {b_name} is not computed from {a_name}")
    above: set[Var] = {b}
    for e in reversed(traced.eqns):
        if any(o in above for o in e.outs):
            above |= {x for x in e.ins if isinstance(x, Var)}
    eqns = [e for e in traced.eqns if any(o in below and o in above and o is not a for o in e.outs)]
    inner = {o for e in eqns for o in e.outs} - {b}
    members = {id(e) for e in eqns}
    for e in traced.eqns:
        if id(e) in members:
            continue
        used = [x for x in e.ins if isinstance(x, Var) and x in inner]
        if used:
            raise BackwardError(
                f"--fuse {spec}: {used[0].name} is used outside the segment (forward line "
                f"{e.line}: {e.text}): fuse a segment whose inner values only it reads"
            )
    if traced.loss in inner:
        raise BackwardError(f"--fuse {spec}: the loss is inside the segment")
    untapped = tuple(name for name, v in traced.taps.items() if v in inner)
    return Segment(spec, a, b, eqns, inner, untapped)


def _sized(value: float, dtype: Any, op: str, sizes: dict[int, str]) -> str | None:
    """A literal operand as an exact number, or in the sizes where it is one of them at the
    traced sizes: ``x / 32.0`` is ``x / n``, ``0.03125 * x`` is ``(1/n) * x``, ``1/31`` is
    ``1/(n - 1)``, ``1/128`` with sizes 32 and 4 is ``1/(n*D)`` (a size's symbol takes the
    traced value: the statement holds there). A literal equals a number when the number,
    rounded to the literal's dtype, is the literal (float32's ``1/127`` is ``1/127``). None:
    no size."""
    cast = np.dtype(dtype).type if np.issubdtype(dtype, np.floating) else np.float64

    def same(number: float) -> bool:
        return bool(cast(number) == cast(value))

    names = list(sizes.items())
    counts = names + [
        (a * b, f"{x}*{y}") for k, (a, x) in enumerate(names) for b, y in names[k + 1 :]
    ]
    for size, name in counts:
        if op == "div" and same(size):
            return name if "*" not in name else f"({name})"
        if op == "mul" and same(1 / size):
            return f"(1/({name}))" if "*" in name else f"(1/{name})"
        if op == "mul" and size > 1 and same(1 / (size - 1)):
            return f"(1/({name} - 1))"
    return None


def exact(value: float, dtype: Any) -> Fraction:
    """The simplest fraction that rounds to ``value`` in its dtype (``1e-05`` -> 1/100000)."""
    cast = np.dtype(dtype).type if np.issubdtype(dtype, np.floating) else np.float64
    near = Fraction(float(value)).limit_denominator(10**6)
    return near if cast(float(near)) == cast(value) else Fraction(float(value))


class _Stater:
    """Builds the statement one equation at a time."""

    def __init__(self, seg: Segment, gen: Gen) -> None:
        self.seg, self.gen = seg, gen
        self.members = {id(e) for e in seg.eqns}
        self.alias: dict[Var, tuple[Ref, list[int | None]]] = {}
        self.inputs: dict[Var, str] = {seg.a: seg.a.name}
        self.labels: list[tuple[str, str, str, str]] = []  # name, python, rows, classes
        self.lines: list[str] = []
        self.constants: dict[str, str] = {}  # name -> exact value ("1/100000")
        self.sized = False
        dims: list[int] = [s for s in seg.a.shape if s != 1]
        for e in seg.eqns:
            for v in (*e.ins, *e.outs):
                dims += [s for s in v.shape if s != 1]
        names = {v.name for e in seg.eqns for v in (*e.ins, *e.outs) if isinstance(v, Var)}
        self.names = names
        free = [s for s in SIZE_NAMES if s not in names]
        self.sizes: dict[int, str] = {}
        for s in dims:
            if s not in self.sizes:
                if len(self.sizes) == len(free):
                    raise BackwardError(f"--fuse {seg.spec}: more distinct sizes than names")
                self.sizes[s] = free[len(self.sizes)]

    def fail(self, e: Eqn, why: str) -> None:
        raise BackwardError(
            f"--fuse {self.seg.spec}: {why} (forward line {e.line}: {e.text}); fuse a shorter "
            "segment"
        )

    def ref(self, v: Ref, idx: list[str | None], op: str = "") -> str:
        """``v`` read at the indices ``idx`` (one per axis; size-1 axes are not indexed)."""
        if isinstance(v, Lit):
            if not v.is_float and not isinstance(v.value, int | float):
                raise BackwardError(f"--fuse {self.seg.spec}: literal {v.value!r}")
            return self.literal(v, op)
        if v in self.alias:
            src, amap = self.alias[v]
            if isinstance(src, Lit):
                return self.ref(src, [], op)
            return self.ref(src, [idx[k] if k is not None else None for k in amap])
        produced = v in self.seg.inner or v is self.seg.b
        outside = self.gen.producer.get(v)
        if not produced and outside is not None and outside.prim in ALIASES:
            x = outside.ins[0]
            amap = self._amap(outside, v)
            if isinstance(x, Var) and x.is_float and amap is not None:
                self.alias[v] = (x, amap)  # read its source: its gradient goes there directly
                return self.ref(v, idx, op)
        if not produced and v not in self.inputs:
            if not v.is_float:
                raise BackwardError(
                    f"--fuse {self.seg.spec}: the segment reads integer values {v.name} other "
                    "than a take's labels"
                )
            self.inputs[v] = v.name
        at = [i for s, i in zip(v.shape, idx, strict=True) if s != 1]
        if any(i is None for i in at):
            raise BackwardError(f"--fuse {self.seg.spec}: cannot index {v.name}")
        return f"{v.name}[{', '.join(at)}]" if at else v.name

    def literal(self, v: Lit, op: str) -> str:
        """A literal: a size (:func:`_sized`), an integer, or a named constant of the
        statement (``eps``, ``c1``, ...): the engine prints a constant by its name, exactly,
        where a decimal it printed would not be read back as the same number."""
        sized = _sized(float(v.value), v.dtype, op, self.sizes)
        if sized is not None:
            self.sized = True
            return sized
        value = exact(float(v.value), v.dtype)
        if value.denominator == 1:
            return number(float(value))
        text = f"{value.numerator}/{value.denominator}"
        for name, known in self.constants.items():
            if known == text:
                return name
        wanted = "eps" if 0 < value < Fraction(1, 1000) else "c"
        name, k = wanted, 1
        while name in self.constants or name in self.names or name in self.sizes.values():
            k += 1
            name = f"{wanted}{k}"
        self.constants[name] = text
        return name

    def lhs(self, out: Var, idx: list[str]) -> str:
        at = [i for s, i in zip(out.shape, idx, strict=True) if s != 1]
        return f"{out.name}[{', '.join(at)}]" if at else out.name

    def add_line(self, out: Var, idx: list[str], rhs: str) -> None:
        self.lines.append(f"{self.lhs(out, idx)} = {rhs}")

    def eqn(self, e: Eqn) -> None:
        if len(e.outs) != 1:
            self.fail(e, f"{e.prim} has several results")
        out = e.outs[0]
        idx = [f"i{k}" for k in range(len(out.shape))]
        if e.prim in ALIASES:
            return self.aliased(e, out, idx)
        if e.prim in INFIX:
            x, w = e.ins
            a, b = self.ref(x, self._at(x, idx), e.prim), self.ref(w, self._at(w, idx), e.prim)
            return self.add_line(out, idx, f"{a} {INFIX[e.prim]} {b}")
        if e.prim in ("reduce_sum", "reduce_max"):
            return self.reduction(e, out)
        if e.prim == "gather":
            return self.take(e, out)
        x = e.ins[0]
        a = self.ref(x, idx)
        if e.prim == "neg":
            rhs = f"-{a}"
        elif e.prim in FUNCTIONS:
            rhs = f"{FUNCTIONS[e.prim]}({a})"
        elif e.prim == "integer_pow":
            rhs = f"{a}**({int(e.params['y'])})"
        elif e.prim == "square":
            rhs = f"{a}**2"
        elif e.prim == "rsqrt":
            rhs = f"{a}**(-1/2)"
        elif e.prim == "pow" and isinstance(e.ins[1], Lit):
            rhs = f"{a}**{number(float(e.ins[1].value))}"
        else:
            return self.fail(e, f"no fused form for {e.prim}")
        self.add_line(out, idx, rhs)

    @staticmethod
    def _at(v: Ref, idx: list[str]) -> list[str | None]:
        """An elementwise operand's indices: the output's (a scalar operand has none)."""
        return idx if len(v.shape) == len(idx) else [None] * len(v.shape)

    def aliased(self, e: Eqn, out: Var, idx: list[str]) -> None:
        """A broadcast, a reshape of unit axes, a copy or a float cast: the same elements read
        at other indices; a tapped one with no new axis is a line of its own (its name)."""
        x = e.ins[0]
        if isinstance(x, Lit):
            self.alias[out] = (x, [])
            return None
        if not x.is_float:
            return self.fail(e, "an integer value inside the segment")
        amap = self._amap(e, out)
        if amap is None:
            return self.fail(e, "a reshape that merges or splits axes")
        new = {k for k, s in enumerate(out.shape) if s != 1} - set(amap)
        if (out.kind == "tap" or out is self.seg.b) and not new:
            return self.add_line(out, idx, self.ref(x, [idx[k] if k is not None else None
                                                         for k in amap]))  # fmt: skip
        self.alias[out] = (x, amap)
        return None

    @staticmethod
    def _amap(e: Eqn, out: Var) -> list[int | None] | None:
        """For each axis of ``e``'s operand, the axis of ``out`` holding it (None: size 1);
        None where a reshape merges or splits axes."""
        x = e.ins[0]
        if e.prim == "broadcast_in_dim":
            dims = tuple(e.params["broadcast_dimensions"])
            return [dims[k] if s != 1 else None for k, s in enumerate(x.shape)]
        if e.prim in ("copy", "convert_element_type"):
            return list(range(len(x.shape)))
        kept_in = [k for k, s in enumerate(x.shape) if s != 1]
        kept_out = [k for k, s in enumerate(out.shape) if s != 1]
        if [x.shape[k] for k in kept_in] != [out.shape[k] for k in kept_out]:
            return None
        amap: list[int | None] = [None] * len(x.shape)
        for k, j in zip(kept_in, kept_out, strict=True):
            amap[k] = j
        return amap

    def reduction(self, e: Eqn, out: Var) -> None:
        x, axes = e.ins[0], tuple(e.params["axes"])
        xi = [f"i{k}" for k in range(len(x.shape))]
        kept = [k for k in range(len(x.shape)) if k not in axes]
        summed = [xi[k] for k in axes if x.shape[k] != 1]
        body = self.ref(x, xi)
        if e.prim == "reduce_max" and not [k for k in kept if x.shape[k] != 1]:
            return self.fail(e, "a max over every axis")
        fn = "sum" if e.prim == "reduce_sum" else "max"
        rhs = f"{fn}({body}, {', '.join(summed)})" if summed else body
        self.add_line(out, [xi[k] for k in kept], rhs)
        return None

    def take(self, e: Eqn, out: Var) -> None:
        """``x[arange(n), y]``: the picked column as a one-hot sum, ``y`` a label input."""
        taken = self.gen.take_columns(e)
        if taken is None:
            return self.fail(e, "a gather other than a take along the last axis")
        x = e.ins[0]
        if 1 in x.shape:
            return self.fail(e, "a take from an operand with a size-1 axis")
        cols, _ = taken
        used = self.names | {label[0] for label in self.labels}
        name = next(c for c in ("y", "labels", "targets", "yb") if c not in used)
        flat = cols[: -len("[:, None]")] if cols.endswith("[:, None]") else f"{cols}[:, 0]"
        self.labels.append((name, flat, self.sizes[x.shape[0]], self.sizes[x.shape[1]]))
        idx = ["i0"] + [None] * (len(out.shape) - 1)
        at = self.lhs(out, [i or "i0" for i in idx])
        self.lines.append(f"{at} = sum(one_hot({name}[i0], i1) * {self.ref(x, ['i0', 'i1'])}, i1)")
        return None


def state(seg: Segment, gen: Gen) -> Stated:
    """The segment as one statement: a line per equation that computes a value (broadcasts
    folded into their readers), the inputs ``A`` and every other value it reads."""
    stater = _Stater(seg, gen)
    for e in seg.eqns:
        stater.eqn(e)
    if not stater.lines or not stater.lines[-1].startswith(seg.b.name):
        raise BackwardError(f"--fuse {seg.spec}: {seg.b.name} is not computed by a line")
    shape = {v: tuple(stater.sizes[s] for s in v.shape if s != 1) for v in stater.inputs}
    is_loss = all(s == 1 for s in seg.b.shape)
    if is_loss and seg.b is not gen.t.loss:
        raise BackwardError(f"--fuse {seg.spec}: B is a scalar that is not the loss")
    upstream = None if is_loss else "d" + seg.b.name
    statement: dict[str, Any] = {
        "name": identifier(f"fused_{seg.spec.replace(':', '_')}"),
        "axes": tuple(dict.fromkeys(stater.sizes.values())),
        "inputs": {name: shape[v] for v, name in stater.inputs.items()},
        "forward": tuple(stater.lines),
        "title": f"--fuse {seg.spec}",
    }
    if stater.constants:
        statement["constants"] = dict(stater.constants)
    if stater.labels:
        statement["labels"] = {n: ((rows,), c) for n, _, rows, c in stater.labels}
    if upstream is not None:
        statement["upstream"] = upstream
    fixed = [name for v, name in stater.inputs.items() if v not in gen.diff]
    if seg.a.name in fixed:
        raise BackwardError(f"--fuse {seg.spec}: the loss does not depend on {seg.a.name}")
    if fixed:
        statement["fixed"] = tuple(fixed)
    inputs = [(name, v) for v, name in stater.inputs.items()]
    labels = [(label[0], label[1]) for label in stater.labels]
    return Stated(statement, inputs, labels, upstream, stater.sized)
