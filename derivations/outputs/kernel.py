"""Generate a stated layer's JAX kernel from its derived gradients (its verification:
:mod:`derivations.outputs.verify`).

The module written has ``<name>_forward`` (the stated forward, line by line) and
``<name>_backward`` (the intermediates, then each derived gradient), printed by
:mod:`derivations.printing.jaxcode`: every variable holds its natural shape, sums print as axis
reductions, ``@`` or ``jnp.einsum``. Where a derived gradient contains an intermediate's
definition exactly (``mean(x**2)``, or a power of ``ms + eps``), the intermediate's name is put
back, so the kernel reads like the forward.
"""

from __future__ import annotations

import importlib.util
import itertools
import textwrap
from pathlib import Path

import sympy as sp

from derivations.engine.collapse import collapse, unpinned
from derivations.engine.derive import _nodes, normal_dummies, raw
from derivations.language.functions import absolute
from derivations.language.layer import Layer
from derivations.language.names import LayerError
from derivations.language.notation import fresh_dummies
from derivations.printing.jaxcode import PrintError, array_code
from derivations.printing.layout import WIDTH, signature, spaced, wrap_code

CENTRING_NODES = 3000  # a gradient larger than this once expanded is printed without centring


def _dtype(layer: Layer) -> str:
    return f"{next(iter(layer.inputs))}.dtype"


def code(
    expr: sp.Expr, layer: Layer, target: tuple, sizes: dict, shape: tuple, dtype: str = ""
) -> str:
    """One right-hand side as jax.numpy code on the axes ``target`` (of sizes ``shape``),
    broadcast where the expression lacks some of them; an unprintable form is an error.
    ``dtype``: the code of a one-hot's or a scatter's dtype (default: the first input's)."""
    try:
        text, axes = array_code(expr, target, sizes, dtype or _dtype(layer))
    except PrintError as err:
        raise LayerError(f"layer {layer.name}: no array form: {err}") from err
    text = spaced(text)
    if tuple(axes) != tuple(target):
        if axes:
            start = target.index(axes[0])
            slots = [":" if x in axes else "None" for x in target[start:]]
            while slots and slots[-1] == ":":
                slots.pop()
            if slots:
                text = f"({text})[{', '.join(slots)}]"
        full = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        text = f"jnp.broadcast_to({text}, {full})"
    if text.startswith("(") and _is_wrapped(text):
        text = text[1:-1]
    return text


def _is_wrapped(text: str) -> bool:
    depth = 0
    for pos, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0 and pos != len(text) - 1:
            return False
    return True


# ---------------------------------------------------------------- names put back
def _candidates(line, layer: Layer, free: dict, depth: int):
    """The line's element at every index it can have at sum depth ``depth``: a free index of
    the gradient on an axis of the same size, or an enclosing dummy (``i0`` .. ``i{depth-1}``),
    with its definition written out there."""
    dummies = [sp.Symbol(f"i{d}", integer=True, nonnegative=True) for d in range(depth)]
    options = [[*(x for x, s in free.items() if s == size), *dummies] for size in line.shape]
    # written out once at the line's own indices, then placed at each index (its bound
    # dummies are fresh, so no placed index is captured): writing it out again per place
    # was most of the time of putting a gradient into the forward's names
    own = raw(line.target[line.indices] if line.indices else line.target, layer)
    for at in itertools.product(*options):
        if len(set(at)) != len(at):
            continue  # a repeated index is a diagonal: never a name's definition
        element = line.target[at] if at else line.target
        placed = own.xreplace(dict(zip(line.indices, at, strict=True)))
        value = normal_dummies(collapse(placed), depth)
        yield element, value
        expanded = sp.expand(value, power_base=False, power_exp=False, log=False)
        if expanded != value:  # the form differentiation leaves inside tanh(...), exp(...)
            yield element, expanded


def _named_lines(layer: Layer) -> list:
    """The lines a gradient may use by name: every one but a scalar loss, unless a claim
    names it (claims may use the output itself: probs in softmax's gradient, ``x == top`` for
    a scalar ``top = max(x[i], i)``)."""
    import ast

    if not layer.is_loss:
        return layer.lines
    loss = str(layer.output.target)
    named = {
        node.id
        for text in layer.claim_text.values()
        for node in ast.walk(ast.parse(text.strip()))
        if isinstance(node, ast.Name)
    }
    return layer.lines if loss in named else layer.lines[:-1]


class _LastLayer:
    """Results kept for the last layer asked about: the report and the kernel each put the
    same gradient into the forward's names (about 0.4 s a gradient), once is enough."""

    layer: Layer | None = None
    kept: dict = {}

    @classmethod
    def get(cls, layer: Layer, key, make):
        if cls.layer is not layer:
            cls.layer, cls.kept = layer, {}
        if key not in cls.kept:
            cls.kept[key] = make()
        return cls.kept[key]


def namings(layer: Layer, free: dict, depth: int = 1) -> list[tuple[sp.Expr, sp.Expr]]:
    """(element, its definition written out) for every intermediate, latest first, at every
    index it can have up to sum depth ``depth`` in a gradient with free indices ``free``
    (index -> size); computed once per layer, free indices and depth."""
    key = ("namings", tuple(free.items()), depth)
    return _LastLayer.get(layer, key, lambda: _namings(layer, free, depth))


def _namings(layer: Layer, free: dict, depth: int) -> list[tuple[sp.Expr, sp.Expr]]:
    return [
        pair
        for line in reversed(_named_lines(layer))
        for level in range(depth + 1)
        for pair in _candidates(line, layer, free, level)
    ]


def named(expr: sp.Expr, pairs: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    """``expr`` with each intermediate's exact definition replaced by its name (``pairs`` from
    :func:`namings`); ``base**k`` becomes ``name**(k/e)`` for a name defined as ``base**e``."""
    for element, value in pairs:
        expr = expr.xreplace({value: element})
        total = [x for x in sp.Mul.make_args(value) if isinstance(x, sp.Sum)]
        if len(total) == 1 and value != total[0]:  # mean = sum / n: sum -> n * mean
            expr = expr.xreplace({total[0]: element * total[0] / value})
        base, power = value.as_base_exp()
        if power.is_Rational and power != 1 and not base.is_Indexed:
            expr = expr.replace(
                lambda x, b=base: x.is_Pow and x.base == b,
                lambda x, e=element, k=power: e ** (x.exp / k),
            )
    return expr


def _centrings(layer: Layer) -> list[tuple[sp.IndexedBase, sp.Expr]]:
    """(x, xc[...] + mu[...]) for each line ``xc[i, j] = x[i, j] - mu[i]`` on an input x."""
    found = []
    for line in layer.lines[:-1]:
        element = next(
            (
                term
                for term in sp.Add.make_args(line.rhs)
                if isinstance(term, sp.Indexed)
                and str(term.base) in layer.inputs
                and term.indices == line.indices
            ),
            None,
        )
        # fresh dummies: a sum's dummy letter may be an index the value is later placed at
        rest = fresh_dummies(line.rhs - element) if element is not None else None
        if rest is not None and rest.free_symbols and not rest.has(element.base):
            found.append((element.base, line.target[line.indices] - rest, line.indices))
    return found


def _label_read(expr: sp.Expr) -> bool:
    """Whether an array is read at a label outside any delta (``logits[p, y[p]]``: no array
    form)."""
    return any(
        any(isinstance(index, sp.Indexed) for index in element.indices)
        for element in expr.atoms(sp.Indexed)
        if not any(element in d.args for d in expr.atoms(sp.KroneckerDelta))
    )


def in_names(expr: sp.Expr, layer: Layer, pairs: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    """A derived gradient in the layer's names, centred where the forward centres: each input
    ``x`` of a line ``xc = x - mu`` is written ``xc + mu`` and the sums re-collapsed, so the
    means cancel exactly (as they must: the layer is shift-invariant) instead of in floating
    point; a label a delta pins is read as its index beside it (:func:`unpinned`:
    ``logits[p, y[p]]`` has no array form, ``logits[p, q]`` has). Every step is an identity,
    so the result equals ``expr``. Computed once per layer, expression and naming."""
    key = ("in_names", expr, id(pairs))
    return _LastLayer.get(layer, key, lambda: (_in_names(expr, layer, pairs), pairs))[0]


def _in_names(expr: sp.Expr, layer: Layer, pairs: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    if _label_read(unpinned(expr)):
        # exp(a - m) * exp(m - a) left beside no delta (a max shift's derivative): combined,
        # they are 1 and the label read with them is gone (an identity; only where needed, as
        # combining exps elsewhere would hide the intermediates' definitions)
        expr = sp.powsimp(expr, combine="exp")
    expr = named(unpinned(expr), pairs)
    centrings = _centrings(layer)
    if not centrings:
        return expr
    centred = expr
    for base, value, letters in centrings:
        centred = centred.replace(
            lambda x, b=base: isinstance(x, sp.Indexed) and x.base == b,
            lambda x, v=value, ls=letters: v.xreplace(dict(zip(ls, x.indices, strict=True))),
        )
    expanded = sp.expand(centred, power_base=False, power_exp=False)
    if _nodes(expanded, CENTRING_NODES) > CENTRING_NODES:
        return expr  # too large to re-collapse quickly: the names alone
    return sp.factor_terms(named(normal_dummies(collapse(expanded)), pairs))


# ---------------------------------------------------------------- the module
def _bindings(layer: Layer, floats: dict[str, tuple], used: set) -> list[str]:
    """``n = x.shape[0]`` for every size the code uses, from the first array that has it."""
    lines = []
    for axis in layer.axes:
        if axis not in used:
            continue
        owner = next((k for k, shape in floats.items() if axis in shape), None)
        if owner is None:
            raise LayerError(f"layer {layer.name}: no float input has axis {axis}")
        lines.append(f"{axis} = {owner}.shape[{floats[owner].index(axis)}]")
    return lines


def _signature(layer: Layer, func: str, args: list[str]) -> list[str]:
    consts = [f"{k}: float = {float(v)!r}" for k, v in _constants(layer)]
    params = [f"{a}: jax.Array" for a in args] + (["*", *consts] if consts else [])
    return signature(f"{layer.name}_{func}", params)


def _constants(layer: Layer):
    return [(str(symbol), value) for symbol, value in layer.constant_values.items()]


def _statement(
    layer: Layer, name: str, expr, target: tuple, shape: tuple, dtype: str = ""
) -> list[str]:
    sizes = dict(zip(target, shape, strict=True))
    rhs = code(expr, layer, target, sizes, shape, dtype)
    line = f"    {name} = {rhs}"
    if len(line) > WIDTH and not (rhs.startswith("(") and _is_wrapped(rhs)):
        line = f"    {name} = ({rhs})"  # parentheses to break the sum inside
    return wrap_code(line, "    ")


def _statements(layer: Layer, lines) -> list[str]:
    out = []
    for line in lines:
        out += _statement(layer, str(line.target), line.rhs, line.indices, line.shape)
    return out


def _sizes_used(exprs) -> set:
    """Sizes a printed expression names: in its terms and in its sums' upper limits."""
    used = set()
    for expr in exprs:
        used |= expr.free_symbols
        for total in expr.atoms(sp.Sum):
            used |= {high + 1 for _, _, high in total.limits}
        for delta in expr.atoms(sp.KroneckerDelta):
            used |= delta.free_symbols
    return used


def render_kernel(
    layer: Layer,
    gradients: dict[str, sp.Expr],
    source: str,
    origins: dict[str, str],
    as_written: frozenset[str] = frozenset(),
) -> str:
    """The kernel module's text for ``gradients`` (input name -> an index expression proved
    equal to the derived gradient); ``origins`` says which form each one is printed from;
    the inputs in ``as_written`` are printed from the claim's text where it translates
    (:mod:`derivations.printing.claimcode`)."""
    from derivations.printing.claimcode import claim_code

    labels = list(layer.labels)
    floats = dict(layer.inputs)
    used = _sizes_used([line.rhs for line in layer.lines])
    used |= {classes for _, classes in layer.labels.values()}
    head = [
        f'"""GENERATED by ``jaxninja derive --layer {source}`` from the sympy derivation of',
        f"layer {layer.name}: do not edit; regenerate with that command.",
        "",
        *textwrap.wrap(layer.title, 92),
        "",
        "Each gradient is the derived one, for any sizes the statement allows (printed from",
        "your claim where it was proved equal to it); verified against jax.vjp of the forward",
        "in float64. Kinks follow jax: abs'(0) = 1, relu'(0) = 0, a tie in maximum 1/2 each.",
        '"""',
        "",
        "import jax",
        "import jax.numpy as jnp",
        "",
        "",
        *_signature(layer, "forward", [*floats, *labels]),
        f'    """The stated forward: {layer.output.text}."""',
        *(f"    {b}" for b in _bindings(layer, floats, used)),
        *_statements(layer, layer.lines),
        f"    return {layer.output.target}",
    ]
    upstream = [] if layer.is_loss else [str(layer.upstream)]
    grad_floats = {**floats, **{a: layer.output.shape for a in upstream}}
    shared = [  # the sizes and the forward's lines, in both functions
        *(
            f"    {b}"
            for b in _bindings(layer, grad_floats, used | _sizes_used(gradients.values()))
        ),
        *_statements(layer, _named_lines(layer)),
    ]
    body = [
        "",
        "",
        *_signature(layer, "backward", [*upstream, *floats, *labels]),
        f'    """The derived gradients ({", ".join("d" + k for k in gradients)})."""',
        *shared,
    ]
    magnitudes = [
        "",
        "",
        *_signature(layer, "magnitudes", [*upstream, *floats, *labels]),
        '    """For the verification: each gradient as printed above with every term, factor',
        "    and summand replaced by its absolute value (its rounding error is at most a few",
        '    eps times this)."""',
        *shared,
    ]
    for key, expr in gradients.items():
        shape = layer.inputs[key]
        free = layer.free_sizes(shape)
        printed = in_names(expr, layer, namings(layer, free))
        body.append(f"    # d{key}: {origins[key]}")
        text = claim_code(layer, key) if key in as_written else None
        if text is not None:
            body += wrap_code(f"    d{key} = {text}", "    ")
        else:
            body += _statement(layer, f"d{key}", printed, tuple(free), shape)
        magnitudes += _statement(layer, f"d{key}", absolute_form(printed), tuple(free), shape)
    returns = [f"d{key}" for key in gradients]
    back = f"    return {', '.join(returns)}" if len(returns) > 1 else f"    return {returns[0]}"
    return without_dead_lines("\n".join(head + body + [back] + magnitudes + [back]) + "\n")


def without_dead_lines(text: str) -> str:
    """The module ``text`` with every assignment no later statement of its function reads
    removed (a size ``D = x.shape[1]`` the code never names, a forward line ``out = w @ V``
    the backward recomputes and never reads), found by liveness from each ``return``."""
    import ast

    try:
        tree = ast.parse(text)
    except (SyntaxError, RecursionError, MemoryError):  # the verification reports it
        return text
    dead: set[int] = set()
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef):
            continue
        live: set[str] = set()
        for statement in reversed(function.body):
            targets = _assigned(statement)
            if targets is not None and not targets & live:
                dead |= set(range(statement.lineno, statement.end_lineno + 1))
                continue
            live -= targets or set()
            live |= {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
    lines = text.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines, 1) if number not in dead)


def _assigned(statement) -> set[str] | None:
    """The names a plain ``a = ...`` statement assigns; None for any other statement."""
    import ast

    if not isinstance(statement, ast.Assign):
        return None
    if not all(isinstance(target, ast.Name) for target in statement.targets):
        return None
    return {target.id for target in statement.targets}


def absolute_form(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each term, factor and summand replaced by its absolute value: the size of
    the numbers a float64 evaluation of exactly this form adds up (a bound fitting the form)."""
    if isinstance(expr, (sp.Add, sp.Mul)):
        return expr.func(*[absolute_form(arg) for arg in expr.args])
    if isinstance(expr, sp.Sum):
        return sp.Sum(absolute_form(expr.function), *expr.limits)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        return absolute_form(expr.base) ** expr.exp
    if expr.is_Number:
        return abs(expr)
    if isinstance(expr, sp.KroneckerDelta) or (expr.is_Symbol and expr.is_positive):
        return expr
    return absolute(expr)


def load_kernel(path: Path, name: str):
    """Import a written kernel module from ``path``."""
    spec = importlib.util.spec_from_file_location(f"_kernel_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
