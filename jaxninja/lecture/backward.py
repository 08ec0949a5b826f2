"""Exercise 1 in JAX: backprop through every intermediate of the chunked forward, by hand.

One line per notebook line, in the notebook's order. Each expression is written the way
``jax.grad`` evaluates the same chain rule, so that on identical inputs the manual gradients are
*bit-identical* to autodiff's (see README, "Why hpreact was not exact"):

- ``log``: jax computes ``g / x``; the notebook's ``(1.0 / probs) * dlogprobs`` rounds twice and
  only agrees when n is a power of two (``-1/n`` is then an exact scale).
- ``tanh``: jax's rule ``(g + g*h) * (1 - h)`` transposes to ``t = dh*(1 - h); t + t*h``, the
  same value as ``(1 - h**2) * dh`` in exact arithmetic but not in floating point.
- matmuls: the transposes of ``dot_general`` contract the cotangent first, e.g.
  ``dW2 = (dlogits^T h)^T``, not ``h^T dlogits``.
- ``max``: jax splits the gradient evenly between tied maxima, so does this code.

``reference_grads`` gets the same 26 gradients from ``jax.grad`` through
:func:`jaxninja.gradcheck.taps.intermediate_grads` (a zero "probe" added to each tapped
intermediate: the
gradient of the loss with respect to the probe is exactly dX), the same mechanism any model's
check uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxninja.gradcheck.taps import intermediate_grads
from jaxninja.lecture.model import BN_EPS, Intermediates, Params, Tap, forward_chunked

ROWS = (
    "logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
    "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar",
    "bndiff2", "bndiff", "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C",
)  # fmt: skip
"""The 26 gradients of Exercise 1, in the order the notebook computes and ``cmp``s them."""


def tanh_jax(h: jax.Array, dh: jax.Array) -> jax.Array:
    """jax's tanh rule ``(g + g*h)(1 - h)``, transposed: ``t + t*h`` with ``t = dh(1 - h)``."""
    t = dh * (1.0 - h)
    return t + t * h


TANH_LINES = {
    "jax": tanh_jax,
    "notebook": lambda h, dh: (1.0 - h**2) * dh,  # exact math, two roundings: not bit-exact
}


def matmul_dx(dout: jax.Array, W: jax.Array) -> jax.Array:
    """d(x @ W)/dx as jax transposes it: contract dout's columns with W's columns, (n, in)."""
    return lax.dot_general(dout, W, (((1,), (1,)), ((), ())))


def matmul_dW(x: jax.Array, dout: jax.Array) -> jax.Array:
    """d(x @ W)/dW as jax transposes it: (dout^T x)^T, shape (in, out)."""
    return lax.dot_general(dout, x, (((0,), (0,)), ((), ()))).T


def manual_backward(
    params: Params, fwd: Intermediates, xb: jax.Array, yb: jax.Array, tanh: str = "jax"
) -> dict[str, jax.Array]:
    """All 26 gradients of Exercise 1 by hand, keyed by the notebook name of X for dX.

    ``tanh="notebook"`` swaps in the lecture's ``(1 - h**2) * dh`` to show what it costs."""
    C, W1, b1, W2, b2, bngain, bnbias = params
    tanh_line = TANH_LINES[tanh]
    # fmt: off
    (emb, embcat, hprebn, bnmeani, bndiff, bndiff2, bnvar, bnvar_inv, bnraw, hpreact, h, logits,
     logit_maxes, norm_logits, counts, counts_sum, counts_sum_inv, probs, logprobs, _) = fwd
    # fmt: on
    # --- the lines of Exercise 1 (notebooks/ copies them from here: keep one statement a line)
    n = xb.shape[0]
    # loss = -logprobs[range(n), yb].mean()
    dlogprobs = jnp.zeros_like(logprobs).at[jnp.arange(n), yb].set(-1.0 / n)
    # logprobs = probs.log()
    dprobs = dlogprobs / probs
    # probs = counts * counts_sum_inv; counts_sum_inv (n, 1) is broadcast over the V columns
    dcounts_sum_inv = (counts * dprobs).sum(1, keepdims=True)
    dcounts = counts_sum_inv * dprobs
    # counts_sum_inv = counts_sum**-1
    dcounts_sum = (-(counts_sum**-2)) * dcounts_sum_inv
    # counts_sum = counts.sum(1, keepdims=True): (n, 1) broadcast back to (n, V)
    dcounts = dcounts + dcounts_sum
    # counts = norm_logits.exp()
    dnorm_logits = counts * dcounts
    # norm_logits = logits - logit_maxes; logit_maxes (n, 1) was broadcast over V
    dlogits = dnorm_logits
    dlogit_maxes = (-dnorm_logits).sum(1, keepdims=True)
    # logit_maxes = logits.max(1, keepdims=True): the gradient goes where the max was (ties split)
    at_max = (logits == logit_maxes).astype(logits.dtype)  # (n, V) one-hot unless tied
    dlogits = dlogits + dlogit_maxes / at_max.sum(1, keepdims=True) * at_max
    # logits = h @ W2 + b2
    dh = matmul_dx(dlogits, W2)
    dW2 = matmul_dW(h, dlogits)
    db2 = dlogits.sum(0)  # (V,): b2 was broadcast over the batch
    # h = tanh(hpreact)
    dhpreact = tanh_line(h, dh)
    # hpreact = bngain * bnraw + bnbias; bngain, bnbias (1, H) broadcast over the batch
    dbngain = (bnraw * dhpreact).sum(0, keepdims=True)
    dbnraw = bngain * dhpreact
    dbnbias = dhpreact.sum(0, keepdims=True)
    # bnraw = bndiff * bnvar_inv
    dbndiff = bnvar_inv * dbnraw
    dbnvar_inv = (bndiff * dbnraw).sum(0, keepdims=True)
    # bnvar_inv = (bnvar + 1e-5) ** -0.5
    dbnvar = (-0.5 * (bnvar + BN_EPS) ** -1.5) * dbnvar_inv
    # bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdims=True)
    dbndiff2 = jnp.broadcast_to(1 / (n - 1) * dbnvar, bndiff2.shape)
    # bndiff2 = bndiff**2
    dbndiff = dbndiff + 2 * bndiff * dbndiff2
    # bndiff = hprebn - bnmeani
    dhprebn = dbndiff
    dbnmeani = (-dbndiff).sum(0, keepdims=True)
    # bnmeani = 1 / n * hprebn.sum(0, keepdims=True)
    dhprebn = dhprebn + 1 / n * dbnmeani
    # hprebn = embcat @ W1 + b1
    dembcat = matmul_dx(dhprebn, W1)
    dW1 = matmul_dW(embcat, dhprebn)
    db1 = dhprebn.sum(0)
    # embcat = emb.reshape(n, -1)
    demb = dembcat.reshape(emb.shape)
    # emb = C[xb]: scatter-add each row of demb into the row of C it came from
    dC = jnp.zeros_like(C).at[xb].add(demb)
    # --- end of Exercise 1
    grads = locals()
    return {name: grads["d" + name] for name in ROWS}


def lecture_forward(params: Params, batch: tuple[jax.Array, jax.Array], tap: Tap) -> jax.Array:
    """The chunked forward as :func:`jaxninja.intermediate_grads` takes it: the loss, with every
    notebook intermediate tapped under its name."""
    xb, yb = batch
    return forward_chunked(params, xb, yb, tap).loss


def reference_grads(
    params: Params, xb: jax.Array, yb: jax.Array, *, jit: bool = False
) -> dict[str, jax.Array]:
    """The same 26 gradients from ``jax.grad``: parameters directly, intermediates via probes
    (:func:`jaxninja.gradcheck.taps.intermediate_grads`; ``jit=True`` compiles the pass)."""
    _, grads = intermediate_grads(lecture_forward, params, (xb, yb), jit=jit)
    return {name: grads[name] for name in ROWS}
