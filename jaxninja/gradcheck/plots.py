"""Pictures for ``jaxninja check --plot DIR``: the lecture's gray image of ``dlogits`` and a bar
chart of every row's error in eps·scale, one bar group per reference (``--model``: the bar chart;
a row that could not be measured, e.g. a wrong shape, is a red mark)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxninja.errors import ConfigError  # noqa: E402
from jaxninja.io.atomic import save_figure  # noqa: E402


def save_plots(result, folder: str | Path) -> list[Path]:
    """Write ``dlogits.png`` (the lecture's check only) and ``errors.png`` into ``folder``
    (created if needed)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--plot {folder}: exists and is not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if getattr(result, "dlogits", None) is not None:
        written.append(_dlogits(result.dlogits, folder / "dlogits.png"))
    return [*written, _errors(result, folder / "errors.png")]


def _dlogits(dlogits: np.ndarray, path: Path) -> Path:
    """The (n, V) matrix as a gray image: the dark cell of each row is the target's -(1-p)/n."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(dlogits, cmap="gray")
    ax.set_title("dlogits (n × vocab)")
    ax.set_xlabel("character")
    ax.set_ylabel("example in batch")
    save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _errors(result, path: Path) -> Path:
    """One horizontal bar per row and reference: the error in eps·scale (0 means bit-exact)."""
    refs = list(dict.fromkeys(r.against for r in result.rows))
    fig, axes = plt.subplots(1, len(refs), figsize=(4 * len(refs), 9), squeeze=False)
    for ax, ref in zip(axes[0], refs, strict=True):
        rows = [r for r in result.rows if r.against == ref]
        ax.barh(
            [r.name for r in rows],
            [r.eps_scale if np.isfinite(r.eps_scale) else 0.0 for r in rows],
            color=["tab:green" if r.exact else "tab:orange" if r.ok else "tab:red" for r in rows],
        )
        for i, r in enumerate(rows):
            if r.exact:
                ax.text(0, i, " exact", va="center", color="tab:green", fontsize=8)
            elif not np.isfinite(r.eps_scale):
                ax.text(0, i, " FAIL (not measured)", va="center", color="tab:red", fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"vs {ref}")
        ax.set_xlabel("error / (eps · scale)")
    fig.suptitle("manual gradient error per row (green: bit-exact, red: breaks its bound)")
    save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
