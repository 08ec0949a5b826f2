"""The numerical contract: one error metric and every bound, in one place.

The metric is **eps·scale**: the largest absolute difference between a gradient and its
reference, in units of the dtype's machine epsilon times the row's *scale* (the largest reference
magnitude of the row)::

    eps_scale = max |manual - reference| / (eps(dtype) * scale)

It is not a count of ulps: an ulp is relative to each element, eps·scale to the row's largest
element, so small entries next to big ones are measured at the big ones' precision (which is the
precision a sum that produced them had). A row whose true gradient is zero by symmetry (the
lecture's ``dlogit_maxes``, ``db1``) has no scale of its own and borrows another row's.

Every comparison in jaxninja (``check``'s table, training's ``--check-every``, the sharded rows,
the derivation verifier, the tests) uses :func:`eps_scale` and one of the bounds below; each bound
says why it is that size.
"""

from __future__ import annotations

import numpy as np

EXACT = 0.0
"""Bit for bit: the same formulas evaluated in the same order (eager manual JAX vs jax.grad)."""

JAX_JIT = 32.0
"""Manual vs ``jax.grad`` when jit-compiled: XLA fuses and reorders the two programs' batch sums
differently (README's check section); a few eps per sum of a few hundred terms, with headroom."""

TRAINING_CHECK = JAX_JIT
"""``train --check-every``: the same comparison as :data:`JAX_JIT`, on the fused backward, at the
largest gradient of all groups (``db1`` is zero by symmetry and has no scale of its own)."""

TORCH = 64.0
"""jaxninja vs torch autograd: different libraries, different kernels and summation orders."""

TORCH_SYMMETRIC = 128.0
"""torch rows whose true gradient is zero (sums of terms that cancel to ~0): twice :data:`TORCH`."""

FUSED = 64.0
"""Exercises 2 and 3: the closed forms reassociate the sums of the chunked chain rule."""

SHARDED = 8.0
"""N devices vs one device: the same formulas, only the order of the cross-device sums differs."""

KERNEL = 8.0
"""A derived kernel vs ``jax.vjp`` of its forward in float64 (the derivation verifier)."""

MODEL_JAX = 32.0
"""A person's own model (``check --model``): manual vs ``jax.grad``, as :data:`JAX_JIT`."""

MODEL_TORCH = 64.0
"""A person's own model: manual vs torch autograd, as :data:`TORCH`."""

ROUNDING = 64.0
"""The diagnosis's line between rounding and a wrong formula (:mod:`jaxninja.gradcheck.diagnose`):
two correct backwards that sum in different orders differ by a few eps·scale (the torch bound,
:data:`TORCH`, covers every measured case), while a wrong formula is off by a fraction of the
gradient itself, ~1e6 eps·scale in float32. A pattern "fits" when the transformed reference is
within this many eps·scale of the manual gradient."""


def machine_eps(dtype: np.dtype | type) -> float:
    """The machine epsilon of a floating dtype (float32: 2**-23)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def row_scale(reference: np.ndarray) -> float:
    """The largest magnitude of a reference row (1.0 for an empty or all-zero row)."""
    reference = np.asarray(reference)
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return scale if scale > 0 else 1.0


def max_abs_diff(value: np.ndarray, reference: np.ndarray) -> float:
    """max |value - reference|, computed in float64 so the difference itself is exact enough."""
    diff = np.abs(np.asarray(value, np.float64) - np.asarray(reference, np.float64))
    return float(diff.max()) if diff.size else 0.0


def eps_scale(
    value: np.ndarray, reference: np.ndarray, scale: float | None = None
) -> tuple[float, float]:
    """``(maxdiff, maxdiff / (eps * scale))``; eps is the reference's dtype's, ``scale`` defaults
    to :func:`row_scale` of the reference."""
    reference = np.asarray(reference)
    maxdiff = max_abs_diff(value, reference)
    scale = row_scale(reference) if scale is None else scale
    return maxdiff, maxdiff / (machine_eps(reference.dtype) * scale)


def within(error: float, bound: float, exact: bool) -> bool:
    """Whether a row keeps its contract: bit-exact when ``bound`` is :data:`EXACT`, else
    ``error <= bound`` (a NaN error never does)."""
    return exact if bound == EXACT else bool(error <= bound)


def non_finite(named) -> list[str]:
    """``name (k of n)`` for each ``(name, array)`` holding NaN or inf: k of its n entries.
    What a diverged run's refusals (resume, sample, evaluate) name."""
    bad = []
    for name, array in named:
        finite = np.isfinite(np.asarray(array))
        if not finite.all():
            bad.append(f"{name} ({int(finite.size - finite.sum()):,} of {finite.size:,})")
    return bad
