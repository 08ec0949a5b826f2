"""Verify a generated kernel: :func:`verify` compares its backward with ``jax.vjp`` of the
forward *as the statement's text reads* (:mod:`derivations.language.interpret`, no sympy
assumptions) and with torch autograd, in float64, at three sizes per axis (one compiled
program for all of them), and reports errors in eps·scale; float32 safety at large inputs is
:mod:`derivations.outputs.verify_float32`'s.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import sympy as sp

from derivations.language.layer import Layer
from jaxninja import numerics

# The verifier's bound, in eps·scale (scale: max |gradient| or of its printed form in absolute
# values, see _errors): jaxninja's numerical contract for a derived kernel vs jax.vjp.
BOUND = numerics.KERNEL
OTHER_SIZE = 5  # every axis not being varied (odd, and unlike the varied sizes: no transposes hide)
VARIED = (7,)  # each axis also at this size and at the smallest size the forward allows
# the verification's programs are compiled with LLVM's cheapest code generation: they run once
# on a few small arrays, so compiling them was the cost (XLA's own graph passes still run)
FAST_COMPILE = {"xla_backend_optimization_level": 0}


class Verified(NamedTuple):
    """One set of sizes: each gradient's max |kernel - reference| in eps·scale, against
    jax.vjp and (when torch is installed) torch autograd of the statement as written."""

    sizes: dict[str, int]
    errors: dict[str, float]
    torch_errors: dict[str, float]

    @property
    def ok(self) -> bool:
        """Every gradient within :data:`BOUND` eps·scale of every reference."""
        return all(e <= BOUND for e in [*self.errors.values(), *self.torch_errors.values()])


def smallest_size(layer: Layer, axis: sp.Symbol) -> int:
    """The smallest size of ``axis`` at which the forward is defined (2 where it divides by
    ``n - 1``), the others at any size."""
    from derivations.engine.derive import _bad_sizes, _hazards, objective

    bad: set[int] = set()
    for base, kind in _hazards(objective(layer), layer):
        if base.free_symbols & set(layer.axes) == {axis}:
            bad |= set(_bad_sizes(base, kind, layer) or ())
    return next(size for size in itertools.count(1) if size not in bad)


def defined_sizes(layer: Layer) -> str:
    """The sizes the forward is defined at, in words: ``n >= 2, H >= 1``."""
    return ", ".join(f"{axis} >= {smallest_size(layer, axis)}" for axis in layer.axes)


def size_cases(layer: Layer) -> list[dict[sp.Symbol, int]]:
    """Every axis at :data:`OTHER_SIZE` (odd), then one axis at a time at its smallest size
    and at :data:`VARIED`: three sizes per axis (smallest, 5, 7) in 1 + 2 * axes cases (each
    case costs one compilation, the verification's main cost)."""
    base = {a: max(OTHER_SIZE, smallest_size(layer, a)) for a in layer.axes}
    cases = [base]
    for axis in layer.axes:
        for size in (smallest_size(layer, axis), *VARIED):
            case = {**base, axis: size}
            if case not in cases:
                cases.append(case)
    return cases


def _case(layer: Layer, sizes: dict, rng) -> tuple[list, list, list]:
    """Float64 inputs at ``sizes``: normal for differentiated inputs, 0/1 for fixed ones (a
    lower-triangular causal mask when square), labels in range, and a normal cotangent."""
    import numpy as np

    floats = []
    for key, shape in layer.inputs.items():
        dims_ = [sizes[a] for a in shape]
        if key in layer.fixed:
            if len(dims_) == 2 and dims_[0] == dims_[1]:
                floats.append(np.tril(np.ones(dims_)))
            else:
                floats.append(rng.integers(0, 2, size=dims_).astype(np.float64))
        else:
            floats.append(rng.normal(size=dims_))
    labels = [
        rng.integers(0, sizes[classes], size=[sizes[a] for a in shape])
        for shape, classes in layer.labels.values()
    ]
    out = [sizes[a] for a in layer.output.shape]
    cotangent = rng.normal(size=out) if out else np.float64(1.0)
    return floats, labels, cotangent


def _errors(layer: Layer, reference, kernel, terms) -> dict[str, float]:
    """max |kernel - reference| / (eps * scale) per gradient, where the scale fits the form
    compared: the larger of max |gradient| and the max of the kernel's printed form with every
    term in absolute value (:func:`absolute_form`). A gradient that cancels (softmax's at T = 1,
    RMSNorm's at D = 1) is computed from terms far larger than itself, and float64 rounds each
    term; a scale of max |gradient| alone would flag a correct kernel OVER THE BOUND."""
    import numpy as np

    eps = float(np.finfo(np.float64).eps)
    errors = {}
    rows = zip(layer.differentiable, reference, kernel, terms, strict=True)
    for key, ref, got, size in rows:
        ref, got = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
        if ref.shape != got.shape:
            errors[f"d{key}"] = float("inf")
            continue
        form = float(np.max(np.abs(np.asarray(size))))
        scale = max(float(np.max(np.abs(ref))), form, 1e-300)
        errors[f"d{key}"] = float(np.max(np.abs(got - ref))) / (eps * scale)
    return errors


def _torch_reference(layer: Layer, floats, labels, cotangent):
    """torch autograd of the statement as written, float64; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from derivations.language.interpret import forward

    run = forward(layer, "torch")
    tensors = [
        torch.tensor(x, dtype=torch.float64, requires_grad=k in layer.differentiable)
        for k, x in zip(layer.inputs, floats, strict=True)
    ]
    out = run(*tensors, *(torch.tensor(y) for y in labels))
    out.backward(torch.tensor(cotangent, dtype=torch.float64))
    return [t.grad.numpy() for k, t in zip(layer.inputs, tensors, strict=True) if t.requires_grad]


def verify(layer: Layer, module, seed: int = 0) -> list[Verified]:
    """The kernel vs ``jax.vjp`` of the statement as written, float64, at :func:`size_cases`;
    scale is max |gradient|: the error relative to the gradient's largest entry."""
    import jax
    import numpy as np

    from derivations.language.interpret import forward as interpreted

    backward = getattr(module, f"{layer.name}_backward")
    magnitudes = getattr(module, f"{layer.name}_magnitudes")
    reference_forward = interpreted(layer, "jax")
    keys = list(layer.inputs)
    moving = [k for k in keys if k in layer.differentiable]

    def one(floats, labels, cotangent):
        fixed = dict(zip(keys, floats, strict=True))

        def of(*xs):
            values = {**fixed, **dict(zip(moving, xs, strict=True))}
            return reference_forward(*(values[k] for k in keys), *labels)

        def pulled(xs, ct):
            return jax.vjp(of, *xs)[1](ct)

        xs = [fixed[k] for k in moving]
        upstream = () if layer.is_loss else (cotangent,)
        kernel = backward(*upstream, *floats, *labels)
        sizes = magnitudes(*upstream, *floats, *labels)
        as_tuple = lambda x: x if isinstance(x, tuple) else (x,)  # noqa: E731
        return pulled(xs, cotangent), as_tuple(kernel), as_tuple(sizes)

    cases = size_cases(layer)
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # this check is float64 by definition
    try:
        drawn = [
            _case(layer, sizes, np.random.default_rng(seed + k)) for k, sizes in enumerate(cases)
        ]
        outputs = jax.device_get(
            jax.jit(lambda cs: [one(*c) for c in cs], compiler_options=FAST_COMPILE)(drawn)
        )
    finally:
        jax.config.update("jax_enable_x64", before)  # the caller's default stays
    results = []
    for sizes, case, (reference, kernel, terms) in zip(cases, drawn, outputs, strict=True):
        torch_ref = _torch_reference(layer, *case)
        torch_errors = {} if torch_ref is None else _errors(layer, torch_ref, kernel, terms)
        named = {str(a): v for a, v in sizes.items()}
        errors = _errors(layer, reference, kernel, terms)
        results.append(Verified(named, errors, torch_errors))
    return results
