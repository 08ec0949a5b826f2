"""The lecture's MLP as one model of the protocol (:mod:`jaxninja.models.protocol`): the check
table for the lecture (:func:`jaxninja.gradcheck.lecture_check.cross_check`) is the table for any
model, applied to this one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.checks import float_dtype
from jaxninja.config import CheckConfig
from jaxninja.data import Dataset
from jaxninja.gradcheck.compare import ZERO_BY_SYMMETRY
from jaxninja.lecture.backward import lecture_forward, manual_backward
from jaxninja.lecture.model import Intermediates, Params, init_params
from jaxninja.models.protocol import Model


def lecture_model(cfg: CheckConfig, ds: Dataset) -> Model:
    """The lecture's MLP as a :class:`~jaxninja.models.protocol.Model`: Exercise 1's
    parameters, a
    batch of ``cfg.batch_size`` training examples, the chunked forward with its 19 taps, and
    the manual backward; torch's column is ``torch_ref``'s notebook forward."""
    dtype = float_dtype(cfg.dtype)

    def init(key: jax.Array) -> Params:
        return init_params(key, ds.vocab.size, cfg.n_embd, cfg.n_hidden, cfg.block_size, dtype)

    def batch(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        ix = np.asarray(jax.random.randint(key, (cfg.batch_size,), 0, len(ds.train.y)))
        return jnp.asarray(ds.train.x[ix]), jnp.asarray(ds.train.y[ix])

    def backward(params: Params, batch, acts: dict[str, jax.Array]) -> dict[str, jax.Array]:
        fwd = Intermediates(**{k: acts[k] for k in Intermediates._fields[:-1]}, loss=None)
        return manual_backward(params, fwd, *batch)

    return Model("lecture", init, batch, lecture_forward, backward, _torch_forward,
                 ZERO_BY_SYMMETRY)  # fmt: skip


def _torch_forward(params: Params, batch, tap) -> object:
    """``torch_ref``'s notebook forward (every intermediate retains its grad), each tapped."""
    from torch_ref.reference import INTERMEDIATES, forward

    fwd = forward(params._asdict(), *(b.numpy() for b in batch))
    for name in INTERMEDIATES:
        tap(name, fwd[name])
    return fwd["loss"]
