"""A multi-run folder's loss plot: every run's curve, their mean and a band of one std."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from jaxninja.io.atomic import save_figure
from jaxninja.training.plot_loss import BLOCK, block_means


def curves(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(block starts, (runs, blocks) mean log10 loss per block, block length) of ``losses``
    (runs, steps), blocked as :func:`jaxninja.training.plot_loss.plot_loss` blocks one run."""
    steps = losses.shape[1]
    block = BLOCK if steps >= 20 * BLOCK else max(1, steps // 20)
    rows = [block_means(run, block) for run in losses]
    return rows[0][0], np.stack([means for _, means in rows]), block


def plot_runs(
    losses: np.ndarray, path: str | os.PathLike, labels: Sequence[str], title: str = ""
) -> None:
    """Save every run's log10 loss per block, the mean over runs and mean +- one sample std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts, means, block = curves(np.asarray(losses))
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in zip(labels, means, strict=True):
        ax.plot(starts, run, lw=0.7, alpha=0.45, label=label if len(labels) <= 8 else None)
    mean = means.mean(axis=0)
    ax.plot(starts, mean, color="black", lw=1.8, label=f"mean of {len(means)}")
    if len(means) > 1:
        std = means.std(axis=0, ddof=1)
        ax.fill_between(starts, mean - std, mean + std, color="black", alpha=0.15, label="± 1 std")
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 loss (mean of {block:,} steps)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
