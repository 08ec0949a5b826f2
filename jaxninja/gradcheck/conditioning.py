"""When a correct float32 backward cannot agree with another to the contract's bound: the
lecture's rows measured for how much rounding they amplify, and their bound widened by it.

Two correct float32 backwards that round differently (jaxninja's and torch's, or eager and jit)
differ by a few eps·scale where the computation is well conditioned; the contract's bounds were
measured there (the lecture's batch 32). Two things amplify rounding, and both happen with
BatchNorm over a small batch (measured at batch 2, and at batch 3 for some seeds):

- **the backward's terms cancel.** Rounding is relative to the terms a sum adds, not to the sum.
  With n = 2, ``bnraw = ±(d/2)/sqrt(d²/4 + 1e-5)`` for the two values' difference d: ±1/√2
  whatever ``hprebn`` is, up to 1e-5/d², so the true ``dhprebn`` is the ~1e-5 remainder of terms
  of size ``|bngain·bnvar_inv·dhpreact|``, and every row below it (``embcat``, ``W1``, ``emb``,
  ``C``) inherits that ratio. :func:`term_magnitudes` measures it: Exercise 1's backward run on
  the terms' squares (``|a·b|² -> a²·b²``, a sum of terms -> the sum of their squares: rounding
  errors of many terms add like a random walk, so a long sum of terms of either sign is not
  counted as a cancellation), in float64; the **backward ratio** of a row is
  ``max sqrt(Σ terms²) / scale``.
- **the forward's values are known to few digits.** Where a column's batch values nearly agree
  (a nearly singular batch variance: ``bnvar`` 7e-6 < eps 1e-5 in one column at batch 2, seed
  14) ``bndiff = hprebn - bnmeani`` loses digits, ``bnraw`` and ``h`` there differ between two
  libraries by ~400 eps relative, and ``W2``'s row for that unit with them.
  :func:`forward_ratios` measures it as the gradient's sensitivity to one rounding of each
  forward value: every value the forward taps moved by ``eps·r·size`` (``r`` = ±1 at random;
  ``size`` the value's own magnitude, or for a sum of terms of either sign the terms',
  :data:`TERMS`), the gradients recomputed in float64; the **forward ratio** of a row is
  ``max |change| / (eps·scale)``, the largest of :data:`DRAWS` draws.

A row's **amplification** ``A`` is the larger ratio. A row over its bound is held to
``max(bound, 8·A)`` instead (:data:`PER_AMPLIFICATION`, measured) and says so: the condition,
the ratio, the widened bound. Only a row over its bound is measured (a row within its bound is
within the contract): a check whose rows all pass costs nothing more. A bit-exact bound stays
bit-exact (two programs with the same operations round the same way whatever the inputs). A
wrong formula is off by a fraction of its terms, ~1e6 times their rounding in float32: the
widened bound still fails it (tested with planted mistakes at batch 2 and 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxninja import numerics
from jaxninja.gradcheck.compare import Row
from jaxninja.lecture.model import BN_EPS

PER_AMPLIFICATION = 8.0
"""eps·scale allowed per unit of amplification: over every row of the lecture's table against
torch at batch 2, 3 (seeds 0-15) and 32 (seeds 0-7), the error was at most 2.92 times the row's
amplification (README); 8 leaves 2.7x."""

EXACT_VALUES = frozenset({"emb", "embcat", "logit_maxes"})
"""Forward values computed without rounding (a gather, a reshape, a max): not perturbed (a
perturbed ``logit_maxes`` would no longer equal any logit, and the max's gradient would have
nowhere to go)."""

TERMS = ("hprebn", "bnmeani", "bndiff", "hpreact", "logits", "norm_logits")
"""Forward values that are sums of terms of either sign: their rounding is relative to the terms'
size, not to their own (:func:`_terms`); every other value rounds relative to itself."""


def _terms(name: str, seen: dict[str, Any], p: Any) -> Any:
    """The size of the terms the forward value ``name`` sums (``seen``: the values so far)."""
    a = {k: abs(v) for k, v in seen.items()}
    if name == "hprebn":
        return a["embcat"] @ abs(p.W1) + abs(p.b1)
    if name == "bnmeani":
        return a["hprebn"].mean(0, keepdims=True)
    if name == "bndiff":
        return a["hprebn"] + a["bnmeani"]
    if name == "hpreact":
        return abs(p.bngain) * a["bnraw"] + abs(p.bnbias)
    if name == "logits":
        return a["h"] @ abs(p.W2) + abs(p.b2)
    return a["logits"] + a["logit_maxes"]  # norm_logits


DRAWS = 2
"""Random draws the forward ratio is the largest of: two roundings (a rounding difference between
two libraries is such a draw), the number :data:`PER_AMPLIFICATION` was measured with."""


def term_magnitudes(params: Any, fwd: Any, xb: Any, yb: Any) -> dict[str, np.ndarray]:
    """``M_X`` for each of Exercise 1's 26 rows (module docstring): the backward of
    :func:`jaxninja.lecture.backward.manual_backward`, line by line, on the terms' squares in
    float64 (``s_X = M_X²``). ``fwd``: the forward's values (named as
    :class:`jaxninja.lecture.model.Intermediates`); ``params``: the lecture's :class:`Params`."""
    a = {k: np.asarray(getattr(fwd, k), np.float64) ** 2 for k in fwd._fields if k != "loss"}
    p = {k: np.asarray(v, np.float64) ** 2 for k, v in params._asdict().items()}
    xb, yb = np.asarray(xb), np.asarray(yb)
    n = xb.shape[0]
    s: dict[str, np.ndarray] = {"logprobs": np.zeros_like(a["logprobs"])}
    s["logprobs"][np.arange(n), yb] = 1.0 / n**2
    s["probs"] = s["logprobs"] / a["probs"]
    s["counts_sum_inv"] = (a["counts"] * s["probs"]).sum(1, keepdims=True)
    s["counts_sum"] = a["counts_sum"] ** -2 * s["counts_sum_inv"]
    s["counts"] = a["counts_sum_inv"] * s["probs"] + s["counts_sum"]
    s["norm_logits"] = a["counts"] * s["counts"]
    s["logit_maxes"] = s["norm_logits"].sum(1, keepdims=True)
    at_max = np.asarray(fwd.logits) == np.asarray(fwd.logit_maxes)
    ties = at_max.sum(1, keepdims=True)
    s["logits"] = s["norm_logits"] + s["logit_maxes"] / ties**2 * at_max
    s["h"] = s["logits"] @ p["W2"].T
    s["W2"] = a["h"].T @ s["logits"]
    s["b2"] = s["logits"].sum(0)
    s["hpreact"] = (1.0 + a["h"] ** 2) * s["h"]  # (1 - h²) dh: the terms dh and h² dh
    s["bngain"] = (a["bnraw"] * s["hpreact"]).sum(0, keepdims=True)
    s["bnraw"] = p["bngain"] * s["hpreact"]
    s["bnbias"] = s["hpreact"].sum(0, keepdims=True)
    s["bnvar_inv"] = (a["bndiff"] * s["bnraw"]).sum(0, keepdims=True)
    s["bnvar"] = 0.25 * (np.sqrt(a["bnvar"]) + BN_EPS) ** -3 * s["bnvar_inv"]
    s["bndiff2"] = np.broadcast_to(s["bnvar"] / (n - 1) ** 2, a["bndiff2"].shape)
    s["bndiff"] = a["bnvar_inv"] * s["bnraw"] + 4 * a["bndiff"] * s["bndiff2"]
    s["bnmeani"] = s["bndiff"].sum(0, keepdims=True)
    s["hprebn"] = s["bndiff"] + s["bnmeani"] / n**2
    s["embcat"] = s["hprebn"] @ p["W1"].T
    s["W1"] = a["embcat"].T @ s["hprebn"]
    s["b1"] = s["hprebn"].sum(0)
    s["emb"] = s["embcat"].reshape(a["emb"].shape)
    s["C"] = np.zeros_like(p["C"])
    np.add.at(s["C"], xb, s["emb"])
    return {name: np.sqrt(value) for name, value in s.items()}


def forward_ratios(
    params: Any, xb: Any, yb: Any, scales: dict[str, float], dtype: np.dtype
) -> dict[str, float]:
    """Each row's forward ratio (module docstring): the largest change of its gradient, over
    :data:`DRAWS` draws of one rounding (``eps(dtype)``) of every forward value, in eps·scale
    (``scales``: each row's scale). The gradients are the lecture's manual backward, in float64
    (x64 on for the call only)."""
    import jax

    from jaxninja.checks import dtype_scope
    from jaxninja.lecture.backward import manual_backward
    from jaxninja.lecture.model import Params, forward_chunked

    eps = numerics.machine_eps(dtype)
    p = Params(**{k: np.asarray(v, np.float64) for k, v in params._asdict().items()})
    rng = np.random.default_rng(0)  # the same draws every run: the bound is reproducible
    with dtype_scope("float64"):
        p = Params(*(jax.device_put(v) for v in p))

        def grads(perturb: bool) -> dict[str, np.ndarray]:
            seen: dict[str, Any] = {}

            def tap(name: str, value: Any) -> Any:  # one rounding of each forward value
                seen[name] = value
                if not perturb or name in EXACT_VALUES:
                    return value
                size = _terms(name, seen, p) if name in TERMS else np.abs(value)
                return value + eps * size * rng.choice([-1.0, 1.0], np.shape(value))

            fwd = forward_chunked(p, xb, yb, tap)
            return {k: np.asarray(v) for k, v in manual_backward(p, fwd, xb, yb).items()}

        g0 = grads(False)
        change = dict.fromkeys(g0, 0.0)
        for _ in range(DRAWS):
            g = grads(True)
            for k in g0:  # a change that is not finite is not measured: no widening from it
                d = numerics.max_abs_diff(g[k], g0[k])
                change[k] = max(change[k], d) if np.isfinite(d) else change[k]
    return {k: change[k] / (eps * scales[k]) for k in g0 if k in scales}


def backward_ratios(
    params: Any, fwd: Any, xb: Any, yb: Any, scales: dict[str, float]
) -> dict[str, float]:
    """Each row's backward ratio: the size of its terms (:func:`term_magnitudes`) over its
    scale."""
    m = term_magnitudes(params, fwd, xb, yb)
    return {k: numerics.row_scale(m[k]) / scales[k] for k in m if k in scales}


def widen(bound: float, amplification: float) -> float:
    """The bound for a row whose rounding is amplified ``amplification`` times:
    ``max(bound, PER_AMPLIFICATION · amplification)``; a bit-exact bound (0) stays bit-exact."""
    if bound == 0 or not np.isfinite(amplification):
        return bound
    return max(bound, PER_AMPLIFICATION * amplification)


def note(back: float, fwd: float, widened: float, n: int) -> str:
    """What a widened row says: the condition, measured, and the bound it gives."""
    amp = max(back, fwd)
    if back >= fwd:
        what = f"its terms are {back:.3g}x its scale (they cancel)"
    else:
        what = f"one rounding of each forward value moves it {fwd:.3g} eps·scale"
    why = f"ill-conditioned: {what}; bound {PER_AMPLIFICATION:g} x {amp:.3g} = {widened:.3g}"
    return f"batch 2 (BatchNorm's output is ±1/√2 whatever its input): {why}" if n == 2 else why


Amplify = Callable[[list[str]], dict[str, tuple[float, float]]]
"""``amplify(names)``: each named row's ``(backward ratio, forward ratio)`` at one check's
inputs (:func:`amplifications` with the inputs bound)."""


def amplifications(
    params: Any, batch: tuple[Any, Any], acts: dict[str, Any], reference: dict[str, Any],
    names: list[str],
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """``(backward ratio, forward ratio)`` of each of ``names`` among the lecture's rows, at
    ``params`` and ``batch`` (``acts``: the forward's tapped values, ``reference``: ``jax.grad``'s
    gradients by name, whose scales the ratios are in)."""
    from jaxninja.gradcheck.compare import ZERO_BY_SYMMETRY
    from jaxninja.lecture.model import Intermediates

    xb, yb = batch
    scales = {k: numerics.row_scale(reference[ZERO_BY_SYMMETRY.get(k, k)]) for k in reference}
    fwd = Intermediates(**{k: acts[k] for k in Intermediates._fields if k != "loss"}, loss=None)
    dtype = np.asarray(reference[names[0]]).dtype
    forward = forward_ratios(params, xb, yb, scales, dtype)
    backward = backward_ratios(params, fwd, xb, yb, scales)
    return {k: (backward[k], forward[k]) for k in names if k in backward}


def widen_rows(rows: list[Row], amplify: Amplify, n: int) -> list[Row]:
    """``rows`` with each row over its bound (against ``jax`` or ``torch``, a measured error, a
    bound that is not bit-exact, a row ``amplify`` knows) held to :func:`widen`'s bound for its
    measured amplification, saying so (:func:`note`); nothing is measured when no row is over
    its bound. ``n``: the batch size (the note names batch 2's condition)."""
    todo = [i for i, r in enumerate(rows) if _candidate(r)]
    if not todo:
        return rows
    ratios = amplify(list(dict.fromkeys(rows[i].name for i in todo)))
    out = list(rows)
    for i in todo:
        r = rows[i]
        if r.name not in ratios:
            continue
        back, fore = ratios[r.name]
        bound = widen(r.bound, max(back, fore))
        if bound <= r.bound:
            continue
        said = note(back, fore, bound, n)
        widened = r._replace(bound=bound)
        out[i] = widened._replace(diagnosis=said if widened.ok else f"{said}; {r.diagnosis}")
    return out


def _candidate(r: Row) -> bool:
    measured = not r.reason and np.isfinite(r.eps_scale) and r.bound != 0
    return r.against in ("jax", "torch") and measured and not r.ok


__all__ = [
    "DRAWS",
    "PER_AMPLIFICATION",
    "backward_ratios",
    "forward_ratios",
    "note",
    "term_magnitudes",
    "widen",
    "widen_rows",
    "amplifications",
    "Amplify",
]
