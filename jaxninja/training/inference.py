"""Use a trained checkpoint: sample names from it, or evaluate it on its data (or other data).

``jaxninja sample`` and ``jaxninja evaluate`` are one call each of :func:`sample` and
:func:`evaluate`. A checkpoint saved before its BatchNorm statistics were calibrated (a run
stopped while finishing) is still usable: the statistics are calibrated on load from the run's
own training split, which gives the same numbers the finished run would have saved.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import checks
from jaxninja.config import TrainConfig
from jaxninja.data import MAX_DATA_BYTES, Dataset, load_dataset, recorded
from jaxninja.errors import CheckpointError, DataError, ModelError
from jaxninja.gradcheck.taps import param_names
from jaxninja.io.checkpoint import Checkpoint, checkpoint_file, load_checkpoint
from jaxninja.lecture.model import BNStats, block_size_of
from jaxninja.models.trainable import Trainable, trainable_of
from jaxninja.numerics import non_finite
from jaxninja.training import memory
from jaxninja.training.evaluate import name_batches, split_losses
from jaxninja.training.rundir import check_same_model, model_arrays

CheckpointLike = str | os.PathLike | Checkpoint
ModelLike = str | os.PathLike | Trainable | None  # a model file (FILE[:NAME]); None: lecture


class Evaluation(NamedTuple):
    """The loss of each split of ``source`` for the checkpoint at ``step``."""

    losses: dict[str, float]
    step: int
    source: str


def load_for_use(
    checkpoint: CheckpointLike,
    dataset: Dataset | None = None,
    model: ModelLike = None,
    allow_model_change: bool = False,
    where: str | None = None,
) -> Usable:
    """A checkpoint with its arrays on the default device in its model's structure, and the
    model's evaluation statistics (the lecture's: from the file, else calibrated now on
    ``dataset`` or the run's own data; a model file's: from its training statistics, or its
    ``calibrate``). ``model`` must be the one the checkpoint records (a model file by the hash
    of its source, unless ``allow_model_change``)."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    where = where or _where(checkpoint)
    trainable = trainable_of(model)
    check_same_model(where, ckpt, trainable, allow_model_change, _note)
    checks.float_dtype(str(jax.tree.leaves(ckpt.params)[0].dtype))  # float64: caller's scope
    config = TrainConfig.from_dict(ckpt.config) if ckpt.model is not None else None
    params, train_stats = model_arrays(ckpt, trainable, config, where)
    if trainable.logits is None:
        raise ModelError(f"{trainable.name}: defines no logits(), so there is nothing to sample "
                         "or evaluate (README, 'Train your own model')")  # fmt: skip
    if ckpt.bn_stats is not None:
        stats = BNStats(*(jnp.asarray(s) for s in ckpt.bn_stats))
    elif trainable.finish is None:
        stats = None
    else:
        data = dataset or _run_data(ckpt, where)
        stats = trainable.finish(params, train_stats, data.train.x)
    _refuse_non_finite(where, "parameters", param_names(params), jax.tree.leaves(params))
    if stats is not None:
        names = param_names(stats)
        _refuse_non_finite(where, "BatchNorm statistics", names, jax.tree.leaves(stats))
    block_size = int(ckpt.config.get("block_size", 0)) or block_size_of(params)
    return Usable(ckpt._replace(params=params, bn_stats=stats), trainable, block_size)


class Usable(NamedTuple):
    """A checkpoint ready to use: its arrays, its model, its context length."""

    ckpt: Checkpoint
    model: Trainable
    block_size: int


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _refuse_non_finite(where: str, what: str, names, arrays) -> None:
    """A diverged run's NaN or inf would sample empty names and evaluate to nan, exit 0:
    refused in one line instead, naming the arrays and how much of each is not finite."""
    bad = non_finite(zip(names, arrays, strict=True))
    if bad:
        raise CheckpointError(
            f"{where}: non-finite {what}: {', '.join(bad)}; the run diverged, so there is "
            "nothing to sample or evaluate (resume an earlier checkpoint, or a smaller ",
            checks.LR,
            ")",
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
    block_size = ckpt.config.get("block_size") if ckpt.model else block_size_of(ckpt.params)
    dataset = load_dataset(source, block_size, max_data_bytes)
    if dataset.vocab != ckpt.vocab:
        raise DataError(
            f"{dataset.source}: vocabulary {dataset.vocab.chars!r} does not match "
            f"the checkpoint's {ckpt.vocab.chars!r} ({where})"
        )
    return dataset


def _same_words(where: str, ckpt: Checkpoint, dataset: Dataset) -> None:
    """The run's own data still holds the words it was trained on (by their hash, as
    ``--resume`` checks): losses on words changed since would be reported as the run's own."""
    if ckpt.data_hash and dataset.data_hash and ckpt.data_hash != dataset.data_hash:
        raise CheckpointError(
            f"{where}: was trained on other words (hash {ckpt.data_hash[:12]}) than "
            f"{dataset.source} holds now (hash {dataset.data_hash[:12]}); the file changed "
            "since. Pass ",
            checks.DATA,
            f" {dataset.source} to evaluate on it anyway",
        )


def sample(
    checkpoint: CheckpointLike,
    num: int = 20,
    seed: int = 0,
    model: ModelLike = None,
    allow_model_change: bool = False,
) -> list[str]:
    """``num`` names drawn from a checkpoint (a file, its folder, or a loaded Checkpoint) of
    the lecture's model, or of ``model`` (the file it was trained with)."""
    batches = sample_batches(checkpoint, num, seed, model, allow_model_change)
    return [name for batch in batches for name in batch]


def sample_batches(
    checkpoint: CheckpointLike,
    num: int = 20,
    seed: int = 0,
    model: ModelLike = None,
    allow_model_change: bool = False,
) -> Iterator[list[str]]:
    """:func:`sample`'s names, a batch at a time, each drawn when asked for (``jaxninja sample``
    prints them as they come). The settings, the checkpoint and the memory are checked now; the
    model is made ready at the first batch, under the checkpoint's dtype (float64: x64 on until
    the last batch is taken or the iterator is dropped)."""
    checks.check_int(checks.NUM, num, 1)
    checks.check_seed(seed)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    leaves = jax.tree.leaves(ckpt.params)
    width = max(max(np.shape(a), default=1) for a in leaves)  # the widest layer, at most
    itemsize = leaves[0].dtype.itemsize
    needed = memory.BASELINE + memory.sampling_bytes(num, width, ckpt.vocab.size, itemsize)
    memory.check_fits(needed, (checks.NUM, f" {num:,} names"))
    return _draw(ckpt, _where(checkpoint), num, seed, model, allow_model_change)


def _draw(
    ckpt: Checkpoint, where: str, num: int, seed: int, model: ModelLike, allow_change: bool
) -> Iterator[list[str]]:
    with checks.dtype_scope(str(jax.tree.leaves(ckpt.params)[0].dtype)):  # float64: x64 here
        use = load_for_use(ckpt, None, model, allow_change, where)
        c = use.ckpt
        yield from name_batches(
            c.params, c.bn_stats, c.vocab, num, jax.random.key(seed),
            logits=use.model.logits, block_size=use.block_size,
        )  # fmt: skip


def evaluate(
    checkpoint: CheckpointLike,
    data: str | os.PathLike | None = None,
    max_data_bytes: int = MAX_DATA_BYTES,
    model: ModelLike = None,
    allow_model_change: bool = False,
) -> Evaluation:
    """The train/val/test losses of a checkpoint on the data it was trained on (or ``data``,
    which must have the same vocabulary; ``"-"`` reads standard input), with the lecture's
    model or ``model`` (the file it was trained with)."""
    checks.check_byte_count(max_data_bytes)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    dataset = _run_data(ckpt, _where(checkpoint), data, max_data_bytes)
    if data is None:
        _same_words(_where(checkpoint), ckpt, dataset)
    with checks.dtype_scope(str(jax.tree.leaves(ckpt.params)[0].dtype)):  # float64: x64 here
        own = dataset if data is None else None  # calibrate on its own data
        use = load_for_use(ckpt, own, model, allow_model_change, _where(checkpoint))
        c = use.ckpt
        losses = split_losses(c.params, c.bn_stats, dataset, use.model.logits)
    _refuse_non_finite(_where(checkpoint), "split losses", list(losses), list(losses.values()))
    return Evaluation(losses, use.ckpt.step, dataset.source)
