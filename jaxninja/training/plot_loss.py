"""The lecture's loss plot: log10 of the loss, averaged over blocks of 1,000 steps."""

from __future__ import annotations

import os
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


def plot_loss(losses: np.ndarray, path: str | os.PathLike | IO[bytes], title: str = "") -> None:
    """Save the log10 training loss per block of steps to ``path`` (PNG, no display needed;
    written atomically: :func:`jaxninja.io.atomic.save_figure`).

    Runs shorter than 20,000 steps use blocks of ``len / 20`` steps so there is still a curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = BLOCK if len(losses) >= 20 * BLOCK else max(1, len(losses) // 20)
    starts, means = block_means(losses, block)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(starts, means)
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 loss (mean of {block:,} steps)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
