"""Is a verified kernel numerically safe in float32, at the inputs people feed it?

:func:`derivations.outputs.verify.verify` checks the kernel's algebra in float64 at inputs near 1.
A kernel can be right there and useless in float32: softplus's derived gradient
``exp(x) * dout / (exp(x) + 1)`` is nan at x = 89 (exp overflows) where the gradient is 1.
:func:`unsafe` runs the kernel in float32 at one draw of the inputs scaled to every magnitude of
:data:`SCALES` (small ones, near any kink at 0 but not on it, and 1 .. 100), and compares it with
``jax.vjp`` of the forward as stated in **float64** at the same (float32-rounded) inputs (float32
autodiff of ``log(1 + exp(x))`` is itself 0 at x = 88 and nan at 89). Where the reference is
finite, a kernel value that is not finite, or off by more than :data:`TOLERANCE` relative to the
gradient's scale, makes the kernel unsafe from that magnitude on; where the float64 reference
itself overflows (a forward that exponentiates 100 * 100), nothing is claimed.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

SCALES = (0.001, 0.01, 0.1, 0.5, *range(1, 101))
"""The magnitudes the inputs are scaled to: the largest |input| of each draw."""

TOLERANCE = 2.0**-10
"""A float32 kernel within this of the float64 gradient (relative to the gradient's scale: the
larger of its max |value| and its printed form with every term in absolute value, as in the
verification) is safe; float32 rounding alone stays near 2^-24 of the scale, so a kernel this
far off has lost 14 of float32's 24 bits."""


FLOOR = float(np.finfo(np.float32).tiny) / TOLERANCE
"""The smallest scale an error is measured against: a gradient below float32's normal range
(1.2e-38) cannot be held to full precision by any float32 computation (a chain of tanh at
|x| = 0.001 underflows), so an error there is not the kernel's."""


class Unsafe(NamedTuple):
    """One gradient that is unsafe in float32 from some magnitude of the inputs on."""

    gradient: str  # "dx"
    below: float | None  # the largest magnitude checked safe below the first failure
    first: float  # the smallest magnitude where it failed
    why: str  # "exp overflows", "non-finite in float32", "off by 3.1e-02 (relative)"

    def text(self, inputs: str) -> str:
        """``dx for |x| > 88: exp overflows``."""
        where = f"> {self.below:g}" if self.below is not None else f">= {self.first:g}"
        return f"{self.gradient} for {inputs} {where}: {self.why}"


def summary(found: list[Unsafe] | tuple[Unsafe, ...], inputs: str) -> str:
    """``dQ, dK for |Q|, |K| > 12: exp overflows; dV ...``: gradients that fail alike, together."""
    groups: dict[tuple, list[str]] = {}
    for item in found:
        groups.setdefault(item[1:], []).append(item.gradient)
    return "; ".join(Unsafe(", ".join(names), *rest).text(inputs) for rest, names in groups.items())


def input_names(layer) -> str:
    """``|x|`` or ``|Q|, |K|, |V|``: the inputs whose magnitude :data:`SCALES` sets."""
    return ", ".join(f"|{key}|" for key in layer.differentiable)


def unsafe(layer, module, kernel_text: str, seed: int = 0) -> list[Unsafe]:
    """Each gradient of ``module`` that is unsafe in float32 at some magnitude of
    :data:`SCALES`; an empty list: safe at every magnitude up to 100."""

    from derivations.outputs.verify import _case, size_cases

    sizes = size_cases(layer)[0]
    floats, labels, cotangent = _case(layer, sizes, np.random.default_rng(seed))
    moving = [k in layer.differentiable for k in layer.inputs]
    base = [_unit(x) if m else x for x, m in zip(floats, moving, strict=True)]
    scales = np.asarray(SCALES, dtype=np.float64)
    # the float32 points, then the same points exactly in float64
    points = [
        (scales.reshape(-1, *[1] * x.ndim) * x).astype(np.float32) if m else x.astype(np.float32)
        for x, m in zip(base, moving, strict=True)
    ]
    kernel = _kernel_float32(layer, module, points, labels, cotangent, moving)
    reference, terms = _reference_float64(layer, module, points, labels, cotangent, moving)
    found = []
    for name, got, ref, size in zip(
        [f"d{k}" for k in layer.differentiable], kernel, reference, terms, strict=True
    ):
        failing = [
            k for k in range(len(SCALES)) if _fails(np.asarray(got[k]), ref[k], size[k]) is not None
        ]
        if failing:
            first = failing[0]
            passed = [SCALES[k] for k in range(first)]
            why = _fails(np.asarray(got[first]), ref[first], size[first])
            # float32's exp overflows past 88.7 (a sum of exps a little before): a kernel that
            # computes exp and fails there (nan, or a sum gone to inf) overflows
            if "jnp.exp(" in kernel_text and (why.startswith("non-finite") or SCALES[first] >= 80):
                why = "exp overflows"
            found.append(Unsafe(name, passed[-1] if passed else None, SCALES[first], why))
    return found


END = 1 - 2**-10
"""The draw's two ends, ``+END`` and ``-END``: not 1, because the scales are whole numbers and
an input at exactly t would sit on every kink at a whole number (ReLU6's 6, hard tanh's 1,
Huber's delta = 1), where the kernel's one-sided value and jax's tie value (1/2) differ; that is
not float32 unsafety. t * END is within 0.1 % of t, so exp still overflows at the scale 89."""


def _unit(x):
    """``x`` scaled into [-END, END] with both ends taken (a scale of t then means the inputs
    reach about +t and -t: an exp overflows at +89, a one-sided draw could miss it)."""

    top = float(np.max(np.abs(x))) if x.size else 0.0
    out = (x / top * END if top > 0 else x).copy()
    flat = out.reshape(-1)
    if flat.size:
        flat[0] = END
    if flat.size > 1:
        flat[-1] = -END
    return out


def _fails(got, ref, size) -> str | None:
    """Why the float32 ``got`` is unsafe against the float64 ``ref``, or None."""

    ref, size = np.asarray(ref, dtype=np.float64), np.asarray(size, dtype=np.float64)
    finite = np.isfinite(ref)
    if not finite.any():
        return None  # the stated forward overflows in float64 here: nothing to compare
    got = np.asarray(got, dtype=np.float64)
    if not np.isfinite(got[finite]).all():
        return "non-finite in float32"
    sizes = size[finite & np.isfinite(size)]
    scale = max(float(np.max(np.abs(ref[finite]))), float(np.max(sizes, initial=0.0)), FLOOR)
    off = float(np.max(np.abs(got[finite] - ref[finite]))) / scale
    return f"off by {off:.1e} (relative)" if off > TOLERANCE else None


def _kernel_float32(layer, module, points, labels, cotangent, moving):
    """The kernel at every scale, float32 (x64 off, as a user's default run has it)."""
    import jax

    from derivations.outputs.verify import FAST_COMPILE

    backward = getattr(module, f"{layer.name}_backward")
    upstream = () if layer.is_loss else (np.asarray(cotangent, dtype=np.float32),)
    axes = (*(None for _ in upstream), *(0 if m else None for m in moving), *(None for _ in labels))
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        with warnings.catch_warnings():  # an overflow here is what is measured, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            out = jax.jit(jax.vmap(backward, in_axes=axes), compiler_options=FAST_COMPILE)(
                *upstream, *points, *labels
            )
            out = jax.device_get(out)
    finally:
        jax.config.update("jax_enable_x64", before)
    return out if isinstance(out, tuple) else (out,)


def _reference_float64(layer, module, points, labels, cotangent, moving):
    """``jax.vjp`` of the stated forward, and the kernel's printed form in absolute values
    (the scale), at every scale, in float64."""
    import jax

    from derivations.language.interpret import forward
    from derivations.outputs.verify import FAST_COMPILE

    stated = forward(layer, "jax")
    magnitudes = getattr(module, f"{layer.name}_magnitudes")
    keys = list(layer.inputs)

    def one(*xs):
        values = dict(zip(keys, xs, strict=True))

        def of(*moved):
            at = {**values, **dict(zip(layer.differentiable, moved, strict=True))}
            return stated(*(at[k] for k in keys), *labels)

        pulled = jax.vjp(of, *(values[k] for k in layer.differentiable))[1](ct)
        upstream = () if layer.is_loss else (ct,)
        sizes = magnitudes(*upstream, *xs, *labels)
        return pulled, sizes if isinstance(sizes, tuple) else (sizes,)

    axes = tuple(0 if m else None for m in moving)
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # the reference is float64 by definition
    try:
        ct = np.asarray(cotangent, dtype=np.float32).astype(np.float64)
        wide = [np.asarray(p, dtype=np.float64) for p in points]
        reference, terms = jax.device_get(
            jax.jit(jax.vmap(one, in_axes=axes), compiler_options=FAST_COMPILE)(*wide)
        )
    finally:
        jax.config.update("jax_enable_x64", before)
    return reference, terms
