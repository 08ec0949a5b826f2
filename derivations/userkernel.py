"""Generate a stated layer's JAX kernel from its derived gradients, and verify it.

The module written has ``<name>_forward`` (the stated forward, line by line) and
``<name>_backward`` (the intermediates, then each derived gradient), printed by
:class:`derivations.printer.JaxPrinter`: one-axis arrays are kept broadcastable ((1, D) or
(n, 1)) inside and reshaped back on return. Where a derived gradient contains an intermediate's
definition exactly (``mean(x**2)``, or a power of ``ms + eps``), the intermediate's name is put
back, so the kernel reads like the forward. :func:`verify` compares the backward with
``jax.vjp`` of the forward in float64 and reports errors in eps·scale.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import NamedTuple

import sympy as sp

from derivations.codegen import wrap_code
from derivations.collapse import collapse
from derivations.printer import JaxPrinter, spaced
from derivations.usercheck import normal_dummies, raw
from derivations.userlayer import FREE, Layer, LayerError

BOUND = 8.0  # eps·scale, the bound the project's generated kernels meet (tests/test_generated)
VERIFY_SIZES = (3, 8, 64)
OTHER_SIZE = 16  # every other axis at verification (different from every n: no transposes hide)


class UserPrinter(JaxPrinter):
    """The project's printer, with square roots as ``jnp.sqrt``, and a summed index found on a
    one-axis array too (``vector_axes``: name -> axis), for layers with no matrix in a sum."""

    _default_settings = {**JaxPrinter._default_settings, "vector_axes": None}

    def _axis_of(self, dummy: sp.Symbol, body: sp.Expr) -> int:
        try:
            return super()._axis_of(dummy, body)
        except ValueError:
            vectors = self._settings["vector_axes"] or {}
            axes = {
                vectors[str(x.base)]
                for x in body.atoms(sp.Indexed)
                if x.rank == 1 and x.indices[0] == dummy and str(x.base) in vectors
            }
            if len(axes) != 1:
                raise
            return axes.pop()

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            return f"jnp.sqrt({self._print(expr.base)})"
        if expr.exp == -sp.S.Half:
            return f"1/jnp.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational)

    def _print_Sum(self, expr: sp.Sum) -> str:
        """A sum over several indices (sympy merges nested sums) as nested reductions, the
        outermost index last."""
        if len(expr.limits) == 1 or expr.function.atoms(sp.KroneckerDelta):
            return super()._print_Sum(expr)
        *inner, (dummy, _, _) = expr.limits
        axis = self._axis_of(dummy, expr.function)
        body = self._with_axis(dummy, axis)._print(sp.Sum(expr.function, *inner))
        keepdims = ", keepdims=True" if self._settings["keepdims"] or self._depth else ""
        return f"jnp.sum({body}, axis={axis}{keepdims})"


def code(expr: sp.Expr, layer: Layer) -> str:
    """One right-hand side as jax.numpy code; an unprintable form is a one-line error."""
    dtype = f"{next(iter(layer.inputs))}.dtype"
    vectors = {
        key: layer.axes.index(shape[0])
        for key, shape in [
            *layer.inputs.items(),
            *((str(line.target), line.shape) for line in layer.lines),
            (str(layer.upstream), layer.output.shape),
        ]
        if len(shape) == 1
    }
    settings = {"one_hot_dtype": dtype, "zeros_shape": None, "keepdims": True}
    printer = UserPrinter({**settings, "vector_axes": vectors})
    try:
        return spaced(printer.doprint(expr))
    except ValueError as err:
        raise LayerError(f"layer {layer.name}: no array form: {err}") from err


# ---------------------------------------------------------------- names put back
def _candidates(line, layer: Layer, depth: int):
    """The line's element at every index it can have at sum depth ``depth``: its free index
    or an enclosing dummy (``i0`` .. ``i{depth-1}``), with its definition written out there."""
    dummies = [sp.Symbol(f"i{d}", integer=True, nonnegative=True) for d in range(depth)]
    options = [[FREE[layer.axes.index(size)], *dummies] for size in line.shape]
    for at in itertools.product(*options):
        element = line.target[at] if at else line.target
        value = normal_dummies(collapse(raw(element, layer)), depth)
        yield element, value


def _named_lines(layer: Layer) -> list:
    """The lines a gradient may use by name: every one but a scalar loss (claims may use the
    output itself: probs in softmax's gradient)."""
    return layer.lines[:-1] if layer.is_loss else layer.lines


def namings(layer: Layer, depth: int = 1) -> list[tuple[sp.Expr, sp.Expr]]:
    """(element, its definition written out) for every intermediate, latest first, at every
    index it can have up to sum depth ``depth``."""
    return [
        pair
        for line in reversed(_named_lines(layer))
        for level in range(depth + 1)
        for pair in _candidates(line, layer, level)
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
        rest = line.rhs - element if element is not None else None
        if rest is not None and rest.free_symbols and not rest.has(element.base):
            found.append((element.base, line.target[line.indices] - rest, line.indices))
    return found


def in_names(expr: sp.Expr, layer: Layer, pairs: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    """A derived gradient in the layer's names, centred where the forward centres: each input
    ``x`` of a line ``xc = x - mu`` is written ``xc + mu`` and the sums re-collapsed, so the
    means cancel exactly (as they must: the layer is shift-invariant) instead of in floating
    point. Every step is an identity, so the result equals ``expr``."""
    expr = named(expr, pairs)
    centrings = _centrings(layer)
    if not centrings:
        return expr
    for base, value, letters in centrings:
        expr = expr.replace(
            lambda x, b=base: isinstance(x, sp.Indexed) and x.base == b,
            lambda x, v=value, ls=letters: v.xreplace(dict(zip(ls, x.indices, strict=True))),
        )
    expr = normal_dummies(collapse(sp.expand(expr, power_base=False, power_exp=False)))
    return sp.factor_terms(named(expr, pairs))


# ---------------------------------------------------------------- the module
def _kept(layer: Layer, shape: tuple[sp.Symbol, ...]) -> str:
    return "(" + ", ".join(str(a) if a in shape else "1" for a in layer.axes) + ",)"


def _bindings(layer: Layer, floats: dict[str, tuple]) -> list[str]:
    lines = []
    for axis in layer.axes:
        owner = next((k for k, shape in floats.items() if axis in shape), None)
        if owner is None:
            raise LayerError(f"layer {layer.name}: no float input has axis {axis}")
        lines.append(f"{axis} = {owner}.shape[{floats[owner].index(axis)}]")
    classes = {classes for _, classes in layer.labels.values()}
    lines += [f"V = {size}" for size in classes if str(size) != "V"]  # one_hot prints V
    for key, shape in floats.items():
        if len(shape) < len(layer.axes):
            lines.append(f"{key} = jnp.reshape({key}, {_kept(layer, shape)})")
    return lines


def _signature(layer: Layer, func: str, args: list[str]) -> str:
    consts = ", ".join(f"{k}: float = {float(v)!r}" for k, v in _constants(layer))
    joined = ", ".join(f"{a}: jax.Array" for a in args)
    return f"def {layer.name}_{func}({joined}{', *, ' + consts if consts else ''}):"


def _constants(layer: Layer):
    return [(str(symbol), value) for symbol, value in layer.constant_values.items()]


def _statements(layer: Layer, lines) -> list[str]:
    out = []
    for line in lines:
        at = layer.free(line.shape)
        rhs = line.rhs.xreplace(dict(zip(line.indices, at, strict=True)))
        out += wrap_code(f"    {line.target} = {code(rhs, layer)}", "    ")
    return out


def _reshape_back(name: str, layer: Layer, shape: tuple) -> str:
    kept = _kept(layer, shape)
    target = "(" + ", ".join(map(str, shape)) + ",)" if shape else "()"
    return f"jnp.reshape(jnp.broadcast_to({name}, {kept}), {target})"


def render_kernel(
    layer: Layer, gradients: dict[str, sp.Expr], source: str, origins: dict[str, str]
) -> str:
    """The kernel module's text for ``gradients`` (input name -> an index expression proved
    equal to the derived gradient); ``origins`` says which form each one is printed from."""
    labels = list(layer.labels)
    floats = dict(layer.inputs)
    head = [
        f'"""GENERATED by ``jaxninja derive --layer {source}`` from the sympy derivation of',
        f"layer {layer.name} ({layer.title}): do not edit; regenerate with that command.",
        "",
        "Each gradient is the derived one, for any batch size (printed from your claim where",
        "the claim was proved equal to it); verified against jax.vjp of the forward in float64.",
        '"""',
        "",
        "import jax",
        "import jax.numpy as jnp",
        "",
        "",
        _signature(layer, "forward", [*floats, *labels]),
        f'    """The stated forward: {layer.output.text}."""',
        *(f"    {b}" for b in _bindings(layer, floats)),
        *_statements(layer, layer.lines),
        f"    return {_reshape_back(str(layer.output.target), layer, layer.output.shape)}",
    ]
    upstream = [] if layer.is_loss else [str(layer.upstream)]
    grad_floats = {**floats, **{a: layer.output.shape for a in upstream}}
    body = [
        "",
        "",
        _signature(layer, "backward", [*upstream, *floats, *labels]),
        f'    """The derived gradients ({", ".join("d" + k for k in gradients)})."""',
        *(f"    {b}" for b in _bindings(layer, grad_floats)),
        *_statements(layer, _named_lines(layer)),
    ]
    pairs = namings(layer)
    for key, expr in gradients.items():
        body.append(f"    # d{key}: {origins[key]}")
        body += wrap_code(f"    d{key} = {code(in_names(expr, layer, pairs), layer)}", "    ")
    returns = [_reshape_back(f"d{key}", layer, layer.inputs[key]) for key in gradients]
    body.append(
        f"    return {', '.join(returns)}" if len(returns) > 1 else f"    return {returns[0]}"
    )
    return "\n".join(head + body) + "\n"


def load_kernel(path: Path, name: str):
    """Import a written kernel module from ``path``."""
    spec = importlib.util.spec_from_file_location(f"_kernel_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- verification
class Verified(NamedTuple):
    """One batch size: each gradient's max |kernel - jax.vjp| in eps·scale."""

    n: int
    errors: dict[str, float]

    @property
    def ok(self) -> bool:
        """Every gradient within :data:`BOUND` eps·scale."""
        return all(error <= BOUND for error in self.errors.values())


def _both(forward, backward, is_loss: bool):
    """jax.vjp's gradients and the kernel's, for several sizes in one compiled call (one
    compilation for all sizes is ~2x faster than one per size on 2 cores)."""
    import jax

    def one(floats, labels, cotangent):
        pullback = jax.vjp(lambda *xs: forward(*xs, *labels), *floats)[1]
        upstream = () if is_loss else (cotangent,)
        kernel = backward(*upstream, *floats, *labels)
        return pullback(cotangent), kernel if isinstance(kernel, tuple) else (kernel,)

    return jax.jit(lambda cases: [one(*case) for case in cases])


def verify(layer: Layer, module, sizes=VERIFY_SIZES, seed: int = 0) -> list[Verified]:
    """The kernel vs ``jax.vjp`` of the forward, float64, at each batch size in ``sizes``;
    scale is max |gradient|: the error relative to the gradient's largest entry."""
    import jax
    import numpy as np

    forward = getattr(module, f"{layer.name}_forward")
    backward = getattr(module, f"{layer.name}_backward")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # this check is float64 by definition
    try:
        cases = [_case(layer, forward, n, np.random.default_rng(seed + n)) for n in sizes]
        outputs = jax.device_get(_both(forward, backward, layer.is_loss)(cases))
    finally:
        jax.config.update("jax_enable_x64", before)  # the caller's default stays
    eps = float(np.finfo(np.float64).eps)
    results = []
    for n, (reference, kernel) in zip(sizes, outputs, strict=True):
        errors = {}
        for key, ref, got in zip(layer.inputs, reference, kernel, strict=True):
            scale = max(float(np.max(np.abs(ref))), 1e-300)
            errors[f"d{key}"] = float(np.max(np.abs(np.asarray(got) - ref))) / (eps * scale)
        results.append(Verified(n, errors))
    return results


def _case(layer: Layer, forward, n: int, rng) -> tuple:
    """Random float64 inputs (normal), labels and a cotangent at batch size ``n``."""
    import jax
    import numpy as np

    dims = {axis: (n if k == 0 else OTHER_SIZE) for k, axis in enumerate(layer.axes)}
    floats = [rng.normal(size=[dims[a] for a in shape]) for shape in layer.inputs.values()]
    labels = [
        rng.integers(0, dims[classes], size=[dims[a] for a in shape])
        for shape, classes in layer.labels.values()
    ]
    shape = jax.eval_shape(lambda *xs: forward(*xs, *labels), *floats).shape
    cotangent = rng.normal(size=shape) if shape else np.float64(1.0)
    return floats, labels, cotangent
