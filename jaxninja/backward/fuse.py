"""``--fuse A:B``: one proved closed form in place of a segment's line-by-line chain, as
Exercises 2 and 3 write cross-entropy's ``dlogits`` and BatchNorm's ``dhprebn`` in one go.

The segment (:mod:`jaxninja.backward.segment`) is stated as one layer of the derivation engine,
which derives each gradient (``dA`` and those of the other values it reads) from the upstream
``dB`` (or from the loss) and prints the kernel. The printed forms are then handed back to the
engine as the layer's claims: only if every one is PROVED equal to the derived gradient (for
symbolic sizes), and the kernel printed from them passes the engine's own verification against
``jax.vjp``, is that kernel put into the backward, as a function of its own called where the
chain would be. CHECKED, REFUTED, NOT PROVED or a failed verification is a one-line refusal.
This is the only part of ``jaxninja backward`` that imports sympy (through ``derivations``).
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, NamedTuple

from jaxninja.backward.segment import Segment, Stated, find, state
from jaxninja.backward.trace import Eqn, Var
from jaxninja.errors import BackwardError, JaxninjaError

if TYPE_CHECKING:
    from jaxninja.backward.emit import Gen


class Fused(NamedTuple):
    """A segment with its proved kernel, ready to be emitted at ``B``'s equation."""

    segment: Segment
    stated: Stated
    function: str  # the kernel's backward, a ``def`` at column 0
    name: str  # the function's name
    returns: list[str]  # the statement inputs whose gradients it returns, in order
    seconds: float


def plan(gen: Gen, specs: list[str] | tuple[str, ...]) -> list[Fused]:
    """Each ``--fuse`` segment found, stated and proved (or a one-line refusal)."""
    import time

    fused: list[Fused] = []
    taken: set[int] = set()
    for spec in specs:
        start = time.perf_counter()
        seg = find(gen.t, spec)
        ids = {id(e) for e in seg.eqns}
        if ids & taken:
            raise BackwardError(f"--fuse {spec}: overlaps another --fuse segment")
        taken |= ids
        stated = state(seg, gen)
        function, name, returns = prove(stated, spec)
        fused.append(Fused(seg, stated, function, name, returns, time.perf_counter() - start))
    return fused


def _claim_text(node: ast.expr) -> str:
    """A printed right-hand side as a claim: ``jnp.sum(...)`` -> ``sum(...)``,
    ``jax.nn.one_hot(y, V, dtype=...)`` -> ``one_hot(y)``; anything else stays as printed
    (the claim reader refuses what it cannot read)."""

    class Claim(ast.NodeTransformer):
        def visit_Call(self, call: ast.Call) -> ast.AST:
            self.generic_visit(call)
            func = ast.unparse(call.func)
            if func == "jax.nn.one_hot":
                return ast.Call(ast.Name("one_hot"), call.args[:1], [])
            if func.startswith("jnp."):
                call.func = ast.Name(func[4:])
            return call

    return ast.unparse(Claim().visit(node))


def _backward_def(text: str, layer_name: str) -> ast.FunctionDef:
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == f"{layer_name}_backward":
            return node
    raise BackwardError(f"layer {layer_name}: the kernel has no backward function")


def prove(stated: Stated, spec: str) -> tuple[str, str, list[str]]:
    """Derive, print, restate the printed forms as claims and prove them; returns the kernel's
    backward function (source), its name, and the inputs whose gradients it returns."""
    from derivations.language.layer import Layer
    from derivations.language.names import LayerError
    from derivations.outputs.layer_report import fate, run_layer

    where = f"--fuse {spec}"
    try:
        layer = Layer(**stated.statement)
        derived = run_layer(layer, None, where, verify=False)
        if derived.kernel_text is None:
            raise BackwardError(f"{where}: the engine printed no closed form ({derived.problem})")
        node = _backward_def(derived.kernel_text, layer.name)
        keys = set(layer.differentiable)
        claims = {}
        for st in node.body:
            if isinstance(st, ast.Assign) and len(st.targets) == 1:
                target = st.targets[0]
                if isinstance(target, ast.Name) and target.id[1:] in keys:
                    claims[target.id[1:]] = _claim_text(st.value)
        claimed = Layer(**stated.statement, claims=claims)
        report = run_layer(claimed, None, where)
    except BackwardError:
        raise
    except (LayerError, JaxninjaError, ArithmeticError, ValueError, TypeError) as err:
        # a statement the engine refuses, its time budget spent, or a form it cannot print:
        # nothing proved, nothing printed
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackwardError(f"{where}: not fused: {first}") from None
    fates = {v.key: fate(v) for v in report.verdicts}
    for key in claimed.differentiable:
        if fates.get(key) != "PROVED":
            raise BackwardError(
                f"{where}: d{key} is {fates.get(key) or 'NOT PROVED'} by the derivation engine: "
                "its closed form is not printed"
            )
    if not report.ok or report.kernel_text is None:
        unsafe = "; ".join(
            f"{u.gradient} from |inputs| {u.first:g}: {u.why}" for u in report.unsafe
        )
        why = report.problem or (f"unsafe in float32: {unsafe}" if unsafe else "over its bound")
        raise BackwardError(f"{where}: the proved kernel failed its verification ({why})")
    node = _backward_def(report.kernel_text, claimed.name)
    returned = node.body[-1]
    if not isinstance(returned, ast.Return) or returned.value is None:
        raise BackwardError(f"{where}: the kernel returns nothing")
    value = returned.value
    names = [ast.unparse(x) for x in (value.elts if isinstance(value, ast.Tuple) else [value])]
    guard = _guard(stated) if stated.sized else []
    return _laid_out(report.kernel_text, node, guard), node.name, [n[1:] for n in names]


def _guard(stated: Stated) -> list[str]:
    """Lines that refuse other sizes: a literal of the forward (``0.03125``) was stated as a
    size (``1/n``), which it equals at the traced sizes only."""
    names = ", ".join(f"{name}.shape" for name, _ in stated.inputs)
    shapes = ", ".join(str(tuple(s for s in v.shape if s != 1)) for _, v in stated.inputs)
    if len(stated.inputs) == 1:
        names, shapes = names + ",", shapes + ","
    return [
        "    # the forward's constants (1/n) are the traced sizes': other sizes are refused",
        f"    if ({names}) != ({shapes}):",
        f'        raise ValueError("fused for the shapes {shapes} only")',
    ]


def _laid_out(text: str, node: ast.FunctionDef, guard: list[str]) -> str:
    """The function's source, its signature one line where it fits 100 columns, else one
    parameter a line (as ruff formats it); a body line the engine could not wrap within 100
    columns (a long derived form) is marked ``# noqa: E501``."""
    lines = text.splitlines()
    doc = node.body[0]
    body = lines[doc.lineno - 1 : doc.end_lineno] + guard + lines[doc.end_lineno : node.end_lineno]
    params = [re.sub(r"^(\w+: [\w.]+)=", r"\1 = ", p) for p in ast.unparse(node.args).split(", ")]
    one = f"def {node.name}({', '.join(params)}):"
    head = [one] if len(one) <= 100 else [f"def {node.name}(", *(f"    {p}," for p in params), "):"]
    body = [f"{line}  # noqa: E501" if len(line) > 100 else line for line in body]
    return "\n".join(head + body)


ENGINE_NOTE = "your claim, proved equal to the derived gradient"
OUR_NOTE = "the engine's printed form, PROVED equal to the derived gradient"


def _squeezed(text: str, v: Var) -> str:
    """``v``'s value without its size-1 axes (the statement's shape)."""
    shape = tuple(s for s in v.shape if s != 1)
    return text if shape == tuple(v.shape) else f"{text}.reshape({shape})"


def _call(lhs: str, func: str, args: list[str]) -> list[str]:
    """``lhs = func(args)`` as ruff formats it (inside ``backward``, 4 columns in): one line
    where it fits 100 columns, else the arguments on their own line, else one per line."""
    one = f"{lhs} = {func}({', '.join(args)})"
    if len(one) <= 96:
        return [one]
    inner = ", ".join(args)
    if len(inner) <= 92:
        return [f"{lhs} = {func}(", f"    {inner}", ")"]
    return [f"{lhs} = {func}(", *(f"    {a}," for a in args), ")"]


def emit(gen: Gen, fused: Fused, e: Eqn) -> list[Var]:
    """The kernel as a local function and its call, at ``B``'s equation; each gradient added
    to its value's (``+=`` where the value already has one). Returns the values that got one."""
    seg, stated = fused.segment, fused.stated
    lines = sorted({x.line for x in seg.eqns if x.line})
    where = f"forward lines {lines[0]}-{lines[-1]}" if len(lines) > 1 else f"forward line {e.line}"
    gen.line("")
    gen.line(f"# {where} (--fuse {seg.spec}): one closed form, derived and PROVED by the")
    gen.line(f"# derivation engine ({', '.join('d' + k for k in fused.returns)} from ")
    gen.body[-1] += f"{'the loss' if stated.upstream is None else 'd' + seg.b.name})"
    local = gen.fresh_name(fused.name.replace("_backward", ""))
    text = fused.function.replace(f"def {fused.name}(", f"def {local}(", 1)
    gen.helpers.append(text.replace(ENGINE_NOTE, OUR_NOTE))
    args = [] if stated.upstream is None else [_squeezed(gen.ct(seg.b), seg.b)]
    args += [_squeezed(gen.val(v), v) for _, v in stated.inputs]
    args += [python for _, python in stated.labels]
    values = dict(stated.inputs)
    targets = [values[k] for k in fused.returns]
    fresh = all(("d" + v.name) not in gen.defined and v not in gen.alias for v in targets)
    if fresh and all(s != 1 for v in targets for s in v.shape):
        names = ", ".join("d" + v.name for v in targets)
        gen.body += _call(names, local, args)
        gen.defined |= {"d" + v.name for v in targets}
        return targets
    result = gen.fresh_name("fused")
    gen.body += _call(result, local, args)
    for k, v in enumerate(targets):
        got = f"{result}[{k}]" if len(targets) > 1 else result
        got = got if all(s != 1 for s in v.shape) else f"{got}.reshape({tuple(v.shape)})"
        gen.add_fused(v, got)
    return targets
