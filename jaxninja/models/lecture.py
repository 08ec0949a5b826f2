"""The lecture's MLP as one model of the protocol (:mod:`jaxninja.models.protocol`): the check
table for the lecture (:func:`jaxninja.gradcheck.lecture_check.cross_check`) is the table for any
model, applied to this one."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.checks import float_dtype
from jaxninja.config import CheckConfig, TrainConfig
from jaxninja.data import Dataset
from jaxninja.gradcheck.compare import ZERO_BY_SYMMETRY
from jaxninja.lecture.backward import lecture_forward, manual_backward
from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import (
    BNStats,
    Intermediates,
    Params,
    draw_scaled,
    init_params,
    logits_fused,
    loss_fused,
    param_shapes,
    params_from_draws,
    w1_scale,
)
from jaxninja.models.protocol import Model
from jaxninja.models.trainable import Trainable


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


# ----------------------------------------------------------------------------------- training


def lecture_trainable() -> Trainable:
    """The lecture's MLP as training sees it: Exercise 4's start (parameters and batch key from
    one seed), the fused manual backward (Exercise 2 and 3, :mod:`jaxninja.lecture.fused`),
    BatchNorm calibrated over the training split after training, the fused logits. The same
    functions every call, so compiled programs are reused."""
    return _LECTURE


def _start(config: TrainConfig, vocab_size: int) -> tuple[Params, None, jax.Array]:
    """Step 0 of a lecture run: the parameters and the batch key both come from
    ``jax.random.key(seed)`` (first and second key of its split), drawn in one compiled program
    (every eager random op compiles its own)."""
    dtype = float_dtype(config.dtype)
    shapes = param_shapes(vocab_size, config.n_embd, config.n_hidden, config.block_size)
    seed = jax.device_put(np.int64(config.seed))  # as jax.random.key takes a Python int
    normals, batch_key = _start_draws(seed, *w1_scale(shapes), shapes, dtype)
    return params_from_draws(normals), None, batch_key


@partial(jax.jit, static_argnames=("shapes", "dtype"))
def _start_draws(
    seed: jax.Array, gain: Any, divisor: Any, shapes: tuple[tuple[int, ...], ...], dtype: jnp.dtype
) -> tuple[list[jax.Array], jax.Array]:
    """The draws of :func:`init_params` (W1 scaled, the rest standard normals) and the batch
    key, from one seed."""
    init_key, batch_key = jax.random.split(jax.random.key(seed))
    return draw_scaled(init_key, shapes, dtype, gain, divisor), batch_key


def _step(params: Params, stats: None, xb: jax.Array, yb: jax.Array):
    """One step's loss and manual gradients (no statistics carried through training)."""
    loss, grads = loss_and_grads(params, xb, yb)
    return loss, grads, stats


def _loss(params: Params, xb: jax.Array, yb: jax.Array) -> jax.Array:
    return loss_fused(params, xb, yb)


def _finish(params: Params, stats: None, x_train: jax.Array) -> BNStats:
    """The lecture's evaluation statistics: BatchNorm calibrated over the training split."""
    from jaxninja.training.evaluate import calibrate

    return calibrate(params, x_train)


def _logits(params: Params, stats: BNStats, x: jax.Array) -> jax.Array:
    return logits_fused(params, x, stats)


_LECTURE = Trainable("lecture", (), _start, _step, _loss, _finish, _logits, warm=True)
