"""Which generated function each derivation becomes: names, arguments, statements, returns.

The signatures are a contract: ``jaxninja/fused.py`` and the checks call these functions. Each
kernel's statements are the layer's kernel definitions (``probs``, ``dlnraw``, ...) followed by
the gradients in a useful order (``dbnbias`` and ``dbngain`` before ``dhprebn``, which reuses
them).
"""

from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from derivations import layers as L
from derivations.spec import Layer


class Statement(NamedTuple):
    """``target = value`` in index notation; ``keepdims`` False for a 1-D bias gradient."""

    target: sp.Indexed
    value: sp.Expr
    keepdims: bool = True


class Kernel(NamedTuple):
    """One generated function."""

    name: str
    layer: Layer
    args: tuple[tuple[str, str], ...]  # (name, type)
    doc: str
    bindings: tuple[str, ...]  # sizes read from the arrays' static shapes
    order: tuple[str, ...]  # the gradients computed, in this order
    returns: tuple[str, ...]
    one_hot_dtype: str | None = None
    zeros_shape: str | None = None
    vectors: tuple[str, ...] = ()  # gradients returned 1-D (no keepdims)

    def statements(self) -> tuple[Statement, ...]:
        """The kernel definitions, then the gradients in ``order``."""
        by_name = {g.name: g for g in self.layer.gradients}
        defs = tuple(Statement(target, value) for target, value in self.layer.kernel_defs)
        grads = tuple(
            Statement(
                sp.IndexedBase(name)[by_name[name].wrt.indices],
                by_name[name].closed,
                name not in self.vectors,
            )
            for name in self.order
        )
        return defs + grads


ARRAY = "jax.Array"


def kernels() -> tuple[Kernel, ...]:
    """Every generated function, in the order of the generated module."""
    return (
        Kernel(
            "cross_entropy_backward",
            L.cross_entropy(),
            (("logits", ARRAY), ("y", ARRAY)),
            "dlogits of the mean cross-entropy of logits (n, V) and integer targets y (n,).",
            ("n, V = logits.shape",),
            ("dlogits",),
            ("dlogits",),
            one_hot_dtype="logits.dtype",
        ),
        Kernel(
            "batchnorm_backward",
            L.batchnorm(),
            (("dhpreact", ARRAY), ("bnraw", ARRAY), ("bnvar_inv", ARRAY), ("bngain", ARRAY)),
            "(dhprebn, dbngain, dbnbias) of BatchNorm with Bessel's n - 1; gains are (1, H).",
            ("n = dhpreact.shape[0]",),
            ("dbnbias", "dbngain", "dhprebn"),
            ("dhprebn", "dbngain", "dbnbias"),
        ),
        Kernel(
            "tanh_backward",
            L.tanh(),
            (("dh", ARRAY), ("h", ARRAY)),
            "dhpreact of h = tanh(hpreact), from h itself.",
            (),
            ("dhpreact",),
            ("dhpreact",),
        ),
        Kernel(
            "linear_backward",
            L.linear(),
            (("dout", ARRAY), ("x", ARRAY), ("W", ARRAY)),
            "(dx, dW, db) of out = x @ W + b; db is 1-D like b.",
            (),
            ("dx", "dW", "db"),
            ("dx", "dW", "db"),
            vectors=("db",),
        ),
        Kernel(
            "embedding_backward",
            L.embedding(),
            (("demb", ARRAY), ("xb", ARRAY), ("vocab_size", "int")),
            "dC of emb = C[xb]: demb (n, block, E) scatter-added into a (vocab_size, E) table.",
            (),
            ("dC",),
            ("dC",),
            zeros_shape="(vocab_size, demb.shape[-1])",
        ),
        Kernel(
            "layernorm_backward",
            L.layernorm(),
            (("dout", ARRAY), ("lnraw", ARRAY), ("lnvar_inv", ARRAY), ("lngain", ARRAY)),
            "(dx, dlngain, dlnbias) of LayerNorm over rows, biased variance; lnvar_inv (n, 1).",
            ("H = dout.shape[1]",),
            ("dlnbias", "dlngain", "dx"),
            ("dx", "dlngain", "dlnbias"),
        ),
        Kernel(
            "softmax_backward",
            L.softmax(),
            (("dprobs", ARRAY), ("probs", ARRAY)),
            "dlogits of probs = softmax(logits, axis=1), from probs itself.",
            (),
            ("dlogits",),
            ("dlogits",),
        ),
        Kernel(
            "log_softmax_backward",
            L.log_softmax(),
            (("dlogprobs", ARRAY), ("logprobs", ARRAY)),
            "dlogits of logprobs = log_softmax(logits, axis=1), from logprobs itself.",
            (),
            ("dlogits",),
            ("dlogits",),
        ),
        Kernel(
            "cross_entropy_logprobs_backward",
            L.cross_entropy_logprobs(),
            (("logprobs", ARRAY), ("y", ARRAY)),
            "dlogits of the mean cross-entropy from the loss's logprobs (n, V) and targets y (n,).",
            ("n, V = logprobs.shape",),
            ("dlogits",),
            ("dlogits",),
            one_hot_dtype="logprobs.dtype",
        ),
    )
