"""Use a trained checkpoint: sample names from it, or evaluate it on its data (or other data).

``jaxninja sample`` and ``jaxninja evaluate`` are one call each of :func:`sample` and
:func:`evaluate`. A checkpoint saved before its BatchNorm statistics were calibrated (a run
stopped while finishing) is still usable: the statistics are calibrated on load from the run's
own training split, which gives the same numbers the finished run would have saved.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import checks
from jaxninja.data import MAX_DATA_BYTES, Dataset, load_dataset, recorded
from jaxninja.errors import CheckpointError, DataError
from jaxninja.io.checkpoint import Checkpoint, checkpoint_file, load_checkpoint
from jaxninja.lecture.model import BNStats, Params, block_size_of
from jaxninja.training import memory
from jaxninja.training.evaluate import calibrate, sample_names, split_losses

CheckpointLike = str | os.PathLike | Checkpoint


class Evaluation(NamedTuple):
    """The loss of each split of ``source`` for the checkpoint at ``step``."""

    losses: dict[str, float]
    step: int
    source: str


def load_for_use(checkpoint: CheckpointLike, dataset: Dataset | None = None) -> Checkpoint:
    """A checkpoint with its arrays on the default device and calibrated statistics (from the
    file, else calibrated now on ``dataset`` or the run's own data)."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    checks.float_dtype(str(ckpt.params.W1.dtype))  # float64: inside the caller's dtype_scope
    params = Params(*(jnp.asarray(p) for p in ckpt.params))
    if ckpt.bn_stats is not None:
        stats = BNStats(*(jnp.asarray(s) for s in ckpt.bn_stats))
    else:
        where = _where(checkpoint)
        data = dataset or _run_data(ckpt, where)
        stats = calibrate(params, data.train.x)
    _refuse_non_finite(_where(checkpoint), "parameters", Params._fields, params)
    _refuse_non_finite(_where(checkpoint), "BatchNorm statistics", BNStats._fields, stats)
    return ckpt._replace(params=params, bn_stats=stats)


def _refuse_non_finite(where: str, what: str, names, arrays) -> None:
    """A diverged run's NaN or inf would sample empty names and evaluate to nan, exit 0:
    refused in one line instead, naming the arrays and how much of each is not finite."""
    bad = []
    for name, array in zip(names, arrays, strict=True):
        finite = np.isfinite(np.asarray(array))
        if not finite.all():
            bad.append(f"{name} ({int(finite.size - finite.sum()):,} of {finite.size:,})")
    if bad:
        raise CheckpointError(
            f"{where}: non-finite {what}: {', '.join(bad)}; the run diverged, so there is "
            "nothing to sample or evaluate (resume an earlier checkpoint, or a smaller --lr)"
        )


def _where(checkpoint: CheckpointLike) -> str:
    return "checkpoint" if isinstance(checkpoint, Checkpoint) else str(checkpoint_file(checkpoint))


def _run_data(
    ckpt: Checkpoint,
    where: str,
    data: str | os.PathLike | None = None,
    max_data_bytes: int = MAX_DATA_BYTES,
) -> Dataset:
    """The data a checkpoint was trained on (or ``data``), with the checkpoint's vocabulary."""
    source = data or recorded(ckpt.config.get("data"))
    dataset = load_dataset(source, block_size_of(ckpt.params), max_data_bytes)
    if dataset.vocab != ckpt.vocab:
        raise DataError(
            f"{dataset.source}: vocabulary {dataset.vocab.chars!r} does not match "
            f"the checkpoint's {ckpt.vocab.chars!r} ({where})"
        )
    return dataset


def sample(checkpoint: CheckpointLike, num: int = 20, seed: int = 0) -> list[str]:
    """``num`` names drawn from a checkpoint (a file, its folder, or a loaded Checkpoint)."""
    checks.check_int("--num", num, 1)
    checks.check_seed(seed)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    n_hidden, vocab_size = ckpt.params.W2.shape
    itemsize = ckpt.params.W1.dtype.itemsize
    needed = memory.BASELINE + memory.sampling_bytes(num, n_hidden, vocab_size, itemsize)
    memory.check_fits(needed, f"--num {num:,} names")
    with checks.dtype_scope(str(ckpt.params.W1.dtype)):  # a float64 run's: x64 for this call
        ckpt = load_for_use(ckpt)
        return sample_names(ckpt.params, ckpt.bn_stats, ckpt.vocab, num, jax.random.key(seed))


def evaluate(
    checkpoint: CheckpointLike,
    data: str | os.PathLike | None = None,
    max_data_bytes: int = MAX_DATA_BYTES,
) -> Evaluation:
    """The train/val/test losses of a checkpoint on the data it was trained on (or ``data``,
    which must have the same vocabulary; ``"-"`` reads standard input)."""
    checks.check_byte_count(max_data_bytes)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    dataset = _run_data(ckpt, _where(checkpoint), data, max_data_bytes)
    with checks.dtype_scope(str(ckpt.params.W1.dtype)):  # a float64 run's: x64 for this call
        ckpt = load_for_use(ckpt, dataset if data is None else None)  # calibrate on its data
        losses = split_losses(ckpt.params, ckpt.bn_stats, dataset)
    _refuse_non_finite(_where(checkpoint), "split losses", list(losses), list(losses.values()))
    return Evaluation(losses, ckpt.step, dataset.source)
