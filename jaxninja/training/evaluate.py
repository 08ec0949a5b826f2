"""After training, the lecture's way: calibrate BatchNorm over the training split, the loss on
each split, and names sampled from the model. Everything here works in bounded memory: chunks of
rows, never one activation array of a whole split, each chunk one compiled program.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.data import Dataset, Vocab
from jaxninja.lecture.model import BNStats, Params, divide, hprebn_of

Logits = Callable[[Any, Any, jax.Array], jax.Array]  # (params, stats, x) -> (N, vocab) logits


def _logits_of(logits: Logits | None) -> Logits:
    """``logits``, or (None) the lecture's."""
    if logits is not None:
        return logits
    from jaxninja.models.trainable import trainable_of

    return trainable_of(None).logits


EVAL_ROWS = 8_192  # rows per chunk when calibrating and evaluating: (8192, n_hidden) at a time
SAMPLE_BATCH = 4_096  # names drawn at once; more are drawn batch after batch
SAMPLE_SEED_OFFSET = 10  # the lecture samples with seed 2147483647 + 10


def _chunks(x: np.ndarray, rows: int):
    """``x`` (N, ...) in pieces of exactly ``rows`` rows (the last padded with row 0) and the
    number of real rows in each: every piece has one shape, so each program compiles once for
    every split and every size of split."""
    x = np.asarray(x)
    for start in range(0, x.shape[0], rows):
        piece = x[start : start + rows]
        real = piece.shape[0]
        if real < rows:
            pad = np.zeros((rows - real, *x.shape[1:]), x.dtype)
            piece = np.concatenate([piece, pad])
        yield piece, real


def _keep(real: jax.Array, rows: int, ndim: int) -> jax.Array:
    """A (rows, 1, ...) mask of the first ``real`` rows."""
    return (jnp.arange(rows) < real).reshape((rows,) + (1,) * (ndim - 1))


@jax.jit
def _hprebn_sum(params: Params, xc: jax.Array, real: jax.Array, mean: jax.Array) -> jax.Array:
    """Σ over a piece's real rows of hprebn - mean, and of its square."""
    d = hprebn_of(params, xc) - mean
    keep = _keep(real, xc.shape[0], 2)
    return jnp.stack([jnp.where(keep, d, 0).sum(0), jnp.where(keep, d * d, 0).sum(0)])


def calibrate(params: Params, x_train: jax.Array, rows: int = EVAL_ROWS) -> BNStats:
    """BatchNorm's statistics over the whole training split: the mean and Bessel variance of
    hprebn, ``rows`` rows at a time (two passes: the mean, then squared deviations from it).

    One compiled program (:func:`_hprebn_sum`, both passes); the sums over pieces are added on
    the host, where each float addition rounds as jax's own op would, because a jax op outside
    a program is a program of its own to compile (the divisions stay jax ops: ``divide``)."""
    n, zeros = x_train.shape[0], np.zeros(params.b1.shape, params.b1.dtype)
    mean = np.asarray(divide(_sum_pieces(params, x_train, rows, zeros, 0), n))
    var = np.asarray(divide(_sum_pieces(params, x_train, rows, mean, 1), n - 1))
    return jax.device_put(BNStats(mean[None, :], var[None, :]))


def _sum_pieces(params: Params, x: jax.Array, rows: int, mean: np.ndarray, which: int):
    """Σ over the pieces of ``x`` of :func:`_hprebn_sum`'s sum ``which`` (0: d, 1: d²)."""
    total = np.zeros_like(mean)
    for xc, real in _chunks(x, rows):
        total = total + np.asarray(_hprebn_sum(params, xc, real, mean))[which]
    return total


@partial(jax.jit, static_argnames="logits")
def _nll_sum(
    params: Any, stats: Any, xc: jax.Array, yc: jax.Array, real: jax.Array, logits: Logits
) -> jax.Array:
    """Σ over a piece's real rows of the negative log-likelihood of the targets."""
    logp = jax.nn.log_softmax(logits(params, stats, xc), axis=1)
    nll = -jnp.take_along_axis(logp, yc[:, None], axis=1)[:, 0]
    return jnp.where(_keep(real, xc.shape[0], 1), nll, 0).sum()


def split_loss(
    params: Any,
    stats: Any,
    x: jax.Array,
    y: jax.Array,
    rows: int = EVAL_ROWS,
    logits: Logits | None = None,
) -> jax.Array:
    """The mean cross-entropy over a split with the model's ``logits`` (default: the
    lecture's), ``rows`` examples at a time (one compiled program for every split; the pieces'
    sums added on the host, as in :func:`calibrate`)."""
    logits = _logits_of(logits)
    xy = np.concatenate([np.asarray(x), np.asarray(y)[:, None]], axis=1)
    total = np.zeros((), jax.tree.leaves(params)[0].dtype)
    for piece, real in _chunks(xy, rows):
        nll = _nll_sum(params, stats, piece[:, :-1], piece[:, -1], real, logits)
        total = total + np.asarray(nll)
    return divide(total, x.shape[0])


def split_losses(
    params: Any, stats: Any, dataset: Dataset, logits: Logits | None = None
) -> dict[str, float]:
    """The loss on each split with the model's evaluation statistics (lecture: calibrated
    BatchNorm; train 2.0705, val 2.1099)."""
    return {
        name: float(split_loss(params, stats, split.x, split.y, logits=logits))
        for name, split in zip(("train", "val", "test"), dataset[:3], strict=True)
    }


@partial(jax.jit, static_argnames="logits")
def _sample_step(
    params: Any, stats: Any, context: jax.Array, key: jax.Array, t: jax.Array, logits: Logits
) -> tuple[jax.Array, jax.Array]:
    """Draw character ``t`` of every name from softmax(logits) with ``fold_in(key, t)``; shift
    it into the context. The key is folded in here: outside, it would be a program of its own."""
    scores = logits(params, stats, context)
    ix = jax.random.categorical(jax.random.fold_in(key, t), scores, axis=1).astype(context.dtype)
    return jnp.concatenate([context[:, 1:], ix[:, None]], axis=1), ix


def sample_key(seed: int) -> jax.Array:
    """The key a run with ``seed`` samples its names with (the lecture's seed + 10), drawn in
    one compiled program (eagerly, the key and its fold-in compiled four)."""
    return _sample_key(jax.device_put(np.int64(seed)))  # as jax.random.key takes a Python int


@jax.jit
def _sample_key(seed: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), SAMPLE_SEED_OFFSET)


def sample_names(
    params: Any,
    stats: Any,
    vocab: Vocab,
    num: int,
    key: jax.Array,
    max_len: int = 100,
    logits: Logits | None = None,
    block_size: int | None = None,
) -> list[str]:
    """``num`` names, as in the lecture: the context starts as ``...`` and characters are drawn
    from the softmax until ``.`` (or ``max_len`` characters, a guard for untrained models).

    Names are drawn :data:`SAMPLE_BATCH` at a time (:func:`name_batches`), so memory stays
    bounded and the first names do not depend on ``num``. ``logits`` is the model's (default:
    the lecture's) and ``block_size`` its context (default: read off the lecture's parameters).
    """
    args = (params, stats, vocab, num, key, max_len, logits, block_size)
    return [name for batch in name_batches(*args) for name in batch]


def name_batches(
    params: Any,
    stats: Any,
    vocab: Vocab,
    num: int,
    key: jax.Array,
    max_len: int = 100,
    logits: Logits | None = None,
    block_size: int | None = None,
) -> Iterator[list[str]]:
    """:func:`sample_names`' names, one batch of at most :data:`SAMPLE_BATCH` after another
    (batch ``b`` drawn with ``fold_in(key, b)``, the first with ``key`` itself), each drawn
    only when asked for: ``sample --num`` prints as it draws, holding one batch."""
    logits = _logits_of(logits)
    if block_size is None:
        from jaxninja.lecture.model import block_size_of

        block_size = block_size_of(params)
    for b, start in enumerate(range(0, num, SAMPLE_BATCH)):
        batch_key = key if b == 0 else jax.random.fold_in(key, b)
        count = min(SAMPLE_BATCH, num - start)
        yield _sample_batch(params, stats, vocab, count, batch_key, max_len, logits, block_size)


def _sample_batch(
    params: Any,
    stats: Any,
    vocab: Vocab,
    num: int,
    key: jax.Array,
    max_len: int,
    logits: Logits,
    block_size: int,
) -> list[str]:
    context = jax.device_put(np.zeros((num, block_size), np.int32))
    tokens = np.zeros((num, max_len), np.int32)
    for t in range(max_len):
        context, ix = _sample_step(params, stats, context, key, np.int32(t), logits)
        tokens[:, t] = np.asarray(ix)
        if (tokens[:, : t + 1] == 0).any(axis=1).all():
            break
    names = []
    for row in tokens:
        end = int(np.argmax(row == 0)) if (row == 0).any() else max_len
        names.append(vocab.decode(row[:end].tolist()))
    return names
