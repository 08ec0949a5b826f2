"""Loss plots: the lecture's (log10 of the loss, averaged over blocks of 1,000 steps) for one
run, and a multi-run folder's (every run's curve, their mean and a band of one std)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO

import numpy as np

from jaxninja.io.atomic import save_figure

BLOCK = 1_000  # steps averaged into one point (the lecture's ``view(-1, 1000).mean(1)``)


def block_means(losses: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(first step of each block, mean log10 loss of the block); a last partial block counts.

    NaN losses (steps whose history was not kept) make their block NaN, a gap in the plot.
    """
    log_loss = np.log10(np.asarray(losses, dtype=np.float64))
    starts = np.arange(0, len(log_loss), block)
    sums = np.add.reduceat(log_loss, starts) if len(log_loss) else np.zeros(0)
    counts = np.minimum(block, len(log_loss) - starts)
    return starts, sums / counts


def plot_loss(
    losses: np.ndarray,
    path: str | os.PathLike | IO[bytes],
    title: str = "",
    val: np.ndarray | None = None,
) -> None:
    """Save the log10 training loss per block of steps to ``path`` (PNG, no display needed;
    written atomically: :func:`jaxninja.io.atomic.save_figure`), and the log10 validation
    loss at the steps of ``val`` ((points, 2): step, loss) beside it.

    Runs shorter than 20,000 steps use blocks of ``len / 20`` steps so there is still a curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = BLOCK if len(losses) >= 20 * BLOCK else max(1, len(losses) // 20)
    starts, means = block_means(losses, block)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(starts, means, label=f"training (mean of each {block:,} steps)")
    if val is not None and len(val):
        ax.plot(val[:, 0], np.log10(val[:, 1]), "o-", ms=3, label="validation (whole split)")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def curves(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(block starts, (runs, blocks) mean log10 loss per block, block length) of ``losses``
    (runs, steps), blocked as :func:`plot_loss` blocks one run."""
    steps = losses.shape[1]
    block = BLOCK if steps >= 20 * BLOCK else max(1, steps // 20)
    rows = [block_means(run, block) for run in losses]
    return rows[0][0], np.stack([means for _, means in rows]), block


def plot_runs(
    losses: np.ndarray,
    path: str | os.PathLike,
    labels: Sequence[str],
    title: str = "",
    val: Sequence[np.ndarray | None] | None = None,
) -> None:
    """Save every run's log10 loss per block, the mean over runs and mean +- one sample std;
    with ``val`` (each run's (points, 2): step, validation loss), each run's validation points
    in its colour and their mean over runs at the steps every run has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts, means, block = curves(np.asarray(losses))
    fig, ax = plt.subplots(figsize=(7, 4))
    val = list(val) if val is not None else [None] * len(labels)
    for label, run, points in zip(labels, means, val, strict=True):
        shown = label if len(labels) <= 8 else None
        (line,) = ax.plot(starts, run, lw=0.7, alpha=0.45, label=shown)
        if points is not None and len(points):
            ax.plot(points[:, 0], np.log10(points[:, 1]), "o", ms=2.5, alpha=0.6,
                    color=line.get_color())  # fmt: skip
    shared = mean_val(val)
    if shared is not None:
        ax.plot(shared[:, 0], np.log10(shared[:, 1]), "o--", color="crimson", ms=4, lw=1.2,
                label=f"validation, mean of {len(labels)} (whole split)")  # fmt: skip
    mean = means.mean(axis=0)
    ax.plot(starts, mean, color="black", lw=1.8, label=f"mean of {len(means)}")
    if len(means) > 1:
        std = means.std(axis=0, ddof=1)
        ax.fill_between(starts, mean - std, mean + std, color="black", alpha=0.15, label="± 1 std")
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 loss (training: mean of {block:,} steps)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def mean_val(val: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """(steps, 2): the mean validation loss over runs at each step every run has a point for
    (None: no such step, or no curves)."""
    if not val or any(v is None or not len(v) for v in val):
        return None
    steps = sorted(set.intersection(*(set(v[:, 0].tolist()) for v in val)))
    if not steps:
        return None
    rows = [[float(v[v[:, 0] == s, 1][-1]) for v in val] for s in steps]
    return np.column_stack([steps, np.mean(rows, axis=1)])
