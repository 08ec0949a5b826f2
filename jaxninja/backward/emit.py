"""The generator: a flattened forward (:mod:`jaxninja.backward.trace`) in, the Python source of
``backward(params, batch, acts)`` out, in the lecture's Exercise-1 style.

The backward walks the forward's equations in reverse, one rule each
(:mod:`jaxninja.backward.rules`); every rule instance it uses must be PROVED in the shipped table
(:mod:`jaxninja.backward.table`), else it refuses in one line. Values the rules read are taken
from ``acts`` (tapped), ``params`` / ``batch``, or recomputed from them at the top of the
function (untapped values, named after their operation: ``exp1``, ``sum2``).
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import numpy as np

from jaxninja.backward import statements as st
from jaxninja.backward.rules import RULES
from jaxninja.backward.trace import Eqn, Lit, Ref, Traced, Var
from jaxninja.errors import BackwardError

ZERO_GRADIENT = {"stop_gradient"}  # contributes zero: no rule needed, a comment says so
COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


class Use(NamedTuple):
    """A rule instance the backward uses: the primitive, its statement, the statement's key."""

    prim: str
    statement: st.Statement
    key: str
    line: int
    text: str


class Source(NamedTuple):
    """What :func:`generate` made: the function's source and the rules it used."""

    code: str
    uses: list[Use]
    rows: list[str]
    unproved: list[str]  # rules used without a proof, by request (allow_unproved)
    fused: tuple[str, ...] = ()  # the --fuse segments, each one line (segment, gradients, time)
    untapped: tuple[str, ...] = ()  # taps inside a fused segment: not rows of its check


def literal(value: Any) -> str:
    """A scalar literal as Python: ``0.5``, ``-jnp.inf``, ``27``, ``True``."""
    if isinstance(value, bool | np.bool_):
        return repr(bool(value))
    if isinstance(value, int | np.integer):
        return repr(int(value))
    value = float(value)
    if np.isinf(value):
        return "jnp.inf" if value > 0 else "-jnp.inf"
    if np.isnan(value):
        return "jnp.nan"
    return repr(value)


class Gen:
    """Emits the backward's statements; rules call back into it."""

    def __init__(self, traced: Traced, lookup, allow_unproved: frozenset[str]) -> None:
        self.t = traced
        self.allow = allow_unproved
        self.unproved: list[str] = []
        self.lookup = lookup  # statement -> None if proved, else the reason it is not
        self.body: list[str] = []
        self.defined: set[str] = set()
        self.needed: set[Var] = set()
        self.uses: list[Use] = []
        self.producer = {out: e for e in traced.eqns for out in e.outs}
        self.names = {v.name for e in traced.eqns for v in e.outs}
        self.names |= {v.name for v in (*traced.params, *traced.batch)}
        self.diff = self._differentiable()
        self.alias: dict[Var, str] = {}
        self.fusions: dict[int, Any] = {}  # id(B's equation) -> its fuse.Fused
        self.skip: set[int] = set()  # ids of the equations a fused segment stands in for
        self.helpers: list[str] = []  # the fused segments' kernels, defined before backward

    # --- what needs a gradient
    def _differentiable(self) -> set[Var]:
        diff = {v for v in self.t.params if v.is_float}
        for e in self.t.eqns:
            if e.prim in ZERO_GRADIENT:
                continue
            if any(isinstance(x, Var) and x in diff for x in e.ins):
                diff |= {o for o in e.outs if o.is_float}
        return diff

    # --- services for the rules
    def val(self, ref: Ref) -> str:
        if isinstance(ref, Lit):
            return literal(ref.value)
        self.needed.add(ref)
        return ref.name

    def fresh_name(self, base: str) -> str:
        k, name = 1, base
        while name in self.names or name in self.defined:
            k += 1
            name = f"{base}{k}"
        self.names.add(name)
        return name

    def line(self, text: str) -> None:
        self.body.append(text)

    def refuse(self, e: Eqn, why: str = "") -> None:
        extra = f": {why}" if why else ""
        raise BackwardError(f"no rule for {e.prim}{extra} (forward line {e.line}: {e.text})")

    def zero(self, var: Ref, e: Eqn, why: str) -> None:
        self.body.append(f"# {why}: no gradient to {getattr(var, 'name', var)}")

    def prove(self, e: Eqn, statement: st.Statement) -> None:
        key = st.key(statement)
        if not any(u.key == key for u in self.uses):
            self.uses.append(Use(e.prim, statement, key, e.line, e.text))
        problem = self.lookup(statement)
        if problem is not None and e.prim in self.allow:
            note = f"{e.prim} (statement {key}): {problem}"
            if note not in self.unproved:
                self.unproved.append(note)
        elif problem is not None:
            raise BackwardError(
                f"rule for {e.prim} not proved ({problem}; statement {key}) "
                f"(forward line {e.line}: {e.text})"
            )

    def ct(self, var: Var) -> str:
        """The name holding ``var``'s gradient (an alias when it is another value's)."""
        return self.alias.get(var, "d" + var.name)

    def add(self, var: Var, expr: str, e: Eqn, statement: st.Statement, note: str = "") -> None:
        """``dvar = expr`` (first contribution) or ``dvar += expr`` (a further use). A first
        contribution that is another gradient as it is (an add's) becomes an alias, not a
        line, unless the value is one of the check's rows."""
        self.prove(e, statement)
        if var not in self.diff:
            return
        name = "d" + var.name
        comments = [note] if note else []
        if var in self.alias:  # a second use of an aliased value: materialise it
            comments.append(f"{var.name} is used again on forward line {e.line}")
            text = f"{name} = {self.alias.pop(var)} + {expr}"
            self.defined.add(name)
        elif name in self.defined:
            comments.append(f"{var.name} is used again on forward line {e.line}")
            text = f"{name} += {expr}"
        elif expr.isidentifier() and not var.rows:
            self.alias[var] = expr
            return
        else:
            self.defined.add(name)
            text = f"{name} = {expr}"
        self.commented(text, "; ".join(comments))

    def add_fused(self, var: Var, expr: str) -> None:
        """``dvar = expr`` or ``dvar += expr``: a fused segment's gradient (proved by the
        engine when the segment was planned, not by the table)."""
        name = "d" + var.name
        if var in self.alias:
            self.commented(f"{name} = {self.alias.pop(var)} + {expr}", "also used outside")
        elif name in self.defined:
            self.commented(f"{name} += {expr}", "also used outside the fused segment")
        else:
            self.line(f"{name} = {expr}")
        self.defined.add(name)

    def commented(self, text: str, note: str) -> None:
        """``text  # note``, or the note on a line of its own above where both do not fit."""
        comment = f"  # {note}" if note else ""
        if len(text + comment) <= 96:  # indented by 4: within the 100-column line
            self.body.append(text + comment)
        else:
            self.body += [comment.strip(), text] if comment else [text]

    # --- gather: the embedding lookup and take-along-axis
    def index_expr(self, v: Ref, size: int, explicit: bool = False) -> str:
        """Readable Python for an integer index array into an axis of ``size``: jnp's
        normalisation of negative indices (``where(i < 0, i + size, i)``, which ``.at[]`` does
        itself: written out only if ``explicit``) and added unit axes are read through
        (``x[..., None]``, ``jnp.arange(32)``)."""
        e = self.producer.get(v) if isinstance(v, Var) else None
        if e is None:
            return self.val(v)
        if e.prim == "select_n" and len(e.ins) == 3:
            p, orig, shifted = e.ins
            pe, se = self.producer.get(p), self.producer.get(shifted)
            if (
                pe is not None
                and se is not None
                and (pe.prim, se.prim) == ("lt", "add")
                and pe.ins[0] is orig
                and se.ins[0] is orig
                and pe.ins[1] == Lit(0, pe.ins[1].dtype)
                and isinstance(se.ins[1], Lit)
                and se.ins[1].value == size
            ):
                inner = self.index_expr(orig, size, explicit)
                if not explicit:
                    return inner
                base, units = inner, ""
                while base.endswith("[..., None]"):  # unit axes outside the where
                    base, units = base[: -len("[..., None]")], units + "[..., None]"
                return f"jnp.where({base} < 0, {base} + {size}, {base}){units}"
        src = e.ins[0] if e.ins else None
        if e.prim == "convert_element_type" and isinstance(src, Var) and not src.is_float:
            # an index's integer width does not change its value
            return self.index_expr(src, size, explicit)
        if e.prim in ("broadcast_in_dim", "reshape") and isinstance(src, Var):
            k = len(v.shape) - len(src.shape)
            same = tuple(v.shape[: len(src.shape)]) == tuple(src.shape)
            ones = all(s == 1 for s in v.shape[len(src.shape) :])
            dims = e.params.get("broadcast_dimensions", tuple(range(len(src.shape))))
            if k > 0 and same and ones and tuple(dims) == tuple(range(len(src.shape))):
                return self.index_expr(src, size, explicit) + "[..., None]" * k
        if e.prim == "iota" and len(v.shape) == 1:
            return f"jnp.arange({v.shape[0]})"
        return self.val(v)

    def strip_last(self, v: Ref, size: int, explicit: bool = False) -> str:
        """``index_expr`` of ``v`` without its trailing unit axis."""
        text = self.index_expr(v, size, explicit)
        return text[: -len("[..., None]")] if text.endswith("[..., None]") else f"{text}[..., 0]"

    def gather_rule(self, e: Eqn, d: str) -> None:
        operand, idx = e.ins
        dn = e.params["dimension_numbers"]
        sizes = tuple(e.params["slice_sizes"])
        shape = tuple(operand.shape)
        batching = tuple(dn.operand_batching_dims)
        if (
            not batching
            and tuple(dn.start_index_map) == (0,)
            and tuple(dn.collapsed_slice_dims) == (0,)
            and sizes == (1, *shape[1:])
            and idx.shape[-1] == 1
        ):
            at = self.strip_last(idx, shape[0])
            expr = f"jnp.zeros_like({self.val(operand)}).at[{at}].add({d})"
            statement = st.embedding(len(idx.shape) - 1)
            return self.add(operand, expr, e, statement, note="scatter-add: rows repeat")
        taken = self.take_columns(e)
        if taken is not None:
            cols, unit = taken
            return self.take_rule(operand, e, d + unit, cols)
        self.refuse(e, "gather other than an embedding lookup or a take along the last axis")

    def take_columns(self, e: Eqn) -> tuple[str, str] | None:
        """A gather that takes one column per row of a 2-D operand (``x[arange(n), y]``, or
        ``take_along_axis``): (the picked columns as Python, shape (n, 1); the subscript that
        gives the gather's gradient that shape), else None."""
        operand, idx = e.ins
        dn = e.params["dimension_numbers"]
        sizes = tuple(e.params["slice_sizes"])
        shape = tuple(operand.shape)
        batching = tuple(dn.operand_batching_dims)
        if len(shape) != 2 or sizes != (1, 1):
            return None
        n = shape[0]
        if (
            batching == (0,)
            and tuple(dn.start_indices_batching_dims) == (0,)
            and tuple(dn.collapsed_slice_dims) == (1,)
            and tuple(dn.start_index_map) == (1,)
            and idx.shape == (n, 1, 1)
        ):
            return self.strip_last(idx, shape[1], True), ""
        if (
            not batching
            and tuple(dn.start_index_map) == (0, 1)
            and tuple(dn.collapsed_slice_dims) == (0, 1)
            and idx.shape == (n, 2)
        ):
            ie = self.producer.get(idx)
            if ie is not None and ie.prim == "concatenate" and len(ie.ins) == 2:
                rows = self.strip_last(ie.ins[0], n)
                cols = self.strip_last(ie.ins[1], shape[1], True) + "[:, None]"
                if rows == f"jnp.arange({n})":
                    return cols, "[:, None]"
        return None

    def take_rule(self, operand: Var, e: Eqn, d: str, cols: str) -> None:
        """The gradient of each row's picked column as a one-hot mask (the statement's claim,
        ``dout[:, None] * one_hot(y)``), not a scatter-add: the same values (one update per row,
        added to zero), and XLA's CPU compiler fuses the mask where it runs a scatter as a loop
        (~5% of a WaveNet training step). ``cols``: the picked columns, shape (n, 1)."""
        picked = self.fresh_name("picked")
        self.commented(f"{picked} = jnp.arange({operand.shape[1]}) == {cols}", "each row's column")
        self.add(operand, f"jnp.where({picked}, {d}, 0.0)", e, st.take(2))

    # --- the walk
    def run(self) -> None:
        live: set[Var] = {self.t.loss} if isinstance(self.t.loss, Var) else set()
        if not live:
            raise BackwardError("the forward's loss is a constant: nothing to differentiate")
        self.defined.add("d" + self.t.loss.name)
        shown = None
        for e in reversed(self.t.eqns):
            if id(e) in self.skip:
                continue
            outs = [o for o in e.outs if o in live]
            if not outs:
                continue
            if id(e) in self.fusions:
                if "d" + outs[0].name in self.defined or outs[0] in self.alias:
                    from jaxninja.backward import fuse

                    got = fuse.emit(self, self.fusions[id(e)], e)
                    live |= {v for v in got if v in self.diff}
                    shown = None
                continue
            out = outs[0]
            if e.line and e.line != shown:
                self.body.append("")
                self.body.append(f"# forward line {e.line}: {e.text}"[:92].rstrip())
                shown = e.line
            if e.prim in ZERO_GRADIENT:
                self.body.append(f"# {e.prim}: contributes zero to {self._names(e.ins)}")
                continue
            if not out.is_float:
                continue
            if "d" + out.name not in self.defined and out not in self.alias:
                continue  # its gradient is zero: nothing flowed to it
            rule = RULES.get(e.prim)
            if rule is None:
                self.refuse(e)
            skipped = [x.name for x in e.ins if isinstance(x, Var) and not x.is_float]
            if skipped and e.prim not in ("gather", "select_n"):
                self.body.append(f"# {', '.join(skipped)}: integer values, no gradient")
            rule(self, e, self.ct(out))
            live |= {x for x in e.ins if isinstance(x, Var) and x in self.diff}

    @staticmethod
    def _names(refs) -> str:
        return ", ".join(r.name for r in refs if isinstance(r, Var))


# ----------------------------------------------------------------------------- the forward


def forward_expr(e: Eqn, val) -> str:
    """Python recomputing one forward equation (for a value the backward reads untapped)."""
    a = [val(x) for x in e.ins]
    p = e.params
    infix = {"add": "+", "sub": "-", "mul": "*", "div": "/", **COMPARE}
    if e.prim in infix:
        return f"{a[0]} {infix[e.prim]} {a[1]}"
    simple = {
        "neg": "-{0}", "exp": "jnp.exp({0})", "log": "jnp.log({0})", "tanh": "jnp.tanh({0})",
        "logistic": "lax.logistic({0})", "erf": "lax.erf({0})", "erfc": "lax.erfc({0})",
        "square": "lax.square({0})", "sqrt": "jnp.sqrt({0})",
        "rsqrt": "lax.rsqrt({0})", "abs": "jnp.abs({0})", "max": "jnp.maximum({0}, {1})",
        "min": "jnp.minimum({0}, {1})", "pow": "lax.pow({0}, {1})", "copy": "{0}",
        "stop_gradient": "lax.stop_gradient({0})", "not": "~{0}",
        "and": "{0} & {1}", "or": "{0} | {1}",
    }  # fmt: skip
    if e.prim in simple:
        return simple[e.prim].format(*a)
    out = e.outs[0]
    if e.prim == "integer_pow":
        return f"lax.integer_pow({a[0]}, {p['y']})"
    if e.prim == "reduce_sum":
        return f"{a[0]}.sum({tuple(p['axes'])})"
    if e.prim == "reduce_max":
        return f"{a[0]}.max({tuple(p['axes'])})"
    if e.prim == "broadcast_in_dim":
        dims = tuple(p["broadcast_dimensions"])
        return f"lax.broadcast_in_dim({a[0]}, {tuple(out.shape)}, {dims})"
    if e.prim in ("reshape", "squeeze", "expand_dims"):
        return f"{a[0]}.reshape({tuple(out.shape)})"
    if e.prim == "transpose":
        return f"{a[0]}.transpose({tuple(p['permutation'])})"
    if e.prim == "select_n":
        return f"lax.select_n({', '.join(a)})"
    if e.prim == "dot_general":
        contract, batch = p["dimension_numbers"]
        dims = ((tuple(contract[0]), tuple(contract[1])), (tuple(batch[0]), tuple(batch[1])))
        return f"lax.dot_general({a[0]}, {a[1]}, {dims})"
    if e.prim == "iota" and len(out.shape) == 1:
        return f"jnp.arange({out.shape[0]})"
    if e.prim == "iota":
        return f"lax.broadcasted_iota(int, {tuple(out.shape)}, {p['dimension']})"
    if e.prim == "concatenate":
        return f"jnp.concatenate([{', '.join(a)}], axis={p['dimension']})"
    if e.prim == "gather":  # as jnp indexing traced it: the same gather, spelled out
        mode = f"lax.GatherScatterMode.{p['mode'].name}"
        fill = literal(p["fill_value"]) if p.get("fill_value") is not None else None
        return (
            f"lax.gather({a[0]}, {a[1]}, lax.{p['dimension_numbers']!r}, "
            f"{tuple(p['slice_sizes'])}, mode={mode}, fill_value={fill})"
        )
    if e.prim == "slice":
        strides = tuple(p["strides"]) if p.get("strides") else None
        start, limit = tuple(p["start_indices"]), tuple(p["limit_indices"])
        return f"lax.slice({a[0]}, {start}, {limit}, {strides})"
    if e.prim == "convert_element_type":
        dtype = np.dtype(p["new_dtype"])
        if np.issubdtype(dtype, np.floating):
            return f"{a[0]}.astype(dtype)"
        return f"{a[0]}.astype({'bool' if dtype == np.bool_ else 'int'})"
    raise BackwardError(
        f"no rule for {e.prim}: cannot recompute it (forward line {e.line}: {e.text}); tap "
        "its result"
    )


def _recompute(gen: Gen) -> list[str]:
    """The lines that read or recompute every value the backward uses, in forward order."""
    needed: set[Var] = set()

    def need(v: Var) -> None:
        if v in needed:
            return
        needed.add(v)
        if v.kind == "value":
            for x in gen.producer[v].ins:
                if isinstance(x, Var):
                    need(x)

    for v in list(gen.needed):
        need(v)
    lines = []
    order = [*gen.t.params, *gen.t.batch]
    lines += [f"{v.name} = {v.source}" for v in order if v in needed]
    for e in gen.t.eqns:
        for out in e.outs:
            if out not in needed:
                continue
            if out.kind == "tap":
                lines.append(f"{out.name} = {out.source}")
            else:
                lines.append(f"{out.name} = {forward_expr(e, gen.val)}")
    first = next((v for v in gen.t.params if v.is_float), None)
    if first is None:
        raise BackwardError("the model has no floating parameters: nothing to differentiate")
    lines.insert(0, f"dtype = {first.source}.dtype")
    return lines


def generate(
    traced: Traced,
    lookup,
    allow_unproved: frozenset[str] = frozenset(),
    fuse: tuple[str, ...] = (),
) -> Source:
    """The source of ``backward(params, batch, acts)`` for ``traced``; ``lookup(statement)``
    says whether each rule instance is proved (None) or why not. A rule not proved refuses,
    unless its primitive is in ``allow_unproved`` (then it is listed in the function's
    docstring and in :attr:`Source.unproved`). Each ``fuse`` segment (``"A:B"``) is one
    closed form the derivation engine derived and proved (:mod:`jaxninja.backward.fuse`)."""
    gen = Gen(traced, lookup, allow_unproved)
    planned = []
    if fuse:
        from jaxninja.backward import fuse as fusing

        planned = fusing.plan(gen, fuse)
        for f in planned:
            gen.skip |= {id(e) for e in f.segment.eqns if e.outs[0] is not f.segment.b}
            gen.fusions[id(gen.producer[f.segment.b])] = f
    untapped = {name for f in planned for name in f.segment.untapped}
    loss = traced.loss
    gen.body.append(f"d{loss.name} = jnp.ones((), dtype)  # d loss / d loss")
    gen.run()
    seed_line = gen.body[0]
    if not any(re.search(rf"\bd{loss.name}\b", line) for line in gen.body[1:]):
        gen.body.remove(seed_line)  # a fused segment to the loss starts from the loss itself
    rows: list[tuple[str, str]] = []
    for name, var in reversed(list(traced.taps.items())):
        if var.is_float and name not in untapped:
            rows.append((name, _grad_of(gen, var)))
    for var in traced.params:
        if var.is_float:
            rows.append((var.row, _grad_of(gen, var)))
    head = _recompute(gen)
    if not any(re.search(r"\bdtype\b", line) for line in [*head[1:], *gen.body]):
        head = head[1:]  # no line reads it (a fused segment to the loss)
    summary = "d loss / d every tapped value and parameter, one line per forward line."
    doc = ["    UNPROVED (used by request): " + u[:60] for u in gen.unproved]
    lines = [line for text in gen.helpers for line in [*text.splitlines(), "", ""]]
    lines.append("def backward(params, batch, acts):")
    if doc:
        lines += [f'    """{summary}', "", *doc, '    """']
    else:
        lines += [f'    """{summary}"""']
    lines += [
        *("    " + line for line in head),
    ]
    lines += [("    " + line) if line else "" for line in gen.body]
    lines.append("    return {")
    lines += [f"        {json.dumps(name)}: {expr}," for name, expr in rows]
    lines.append("    }")
    rows_names = [name for name, _ in rows]
    notes = tuple(
        f"{f.segment.spec}: {', '.join('d' + k for k in f.returns)} PROVED ({f.seconds:.1f} s)"
        for f in planned
    )
    code = "\n".join(lines) + "\n"
    return Source(code, gen.uses, rows_names, gen.unproved, notes, tuple(sorted(untapped)))


def _grad_of(gen: Gen, var: Var) -> str:
    name = gen.ct(var)
    if name in gen.defined or var in gen.alias:
        return name
    gen.needed.add(var)
    return f"jnp.zeros_like({var.name})"
