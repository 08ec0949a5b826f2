"""Pictures for ``jaxninja check --plot DIR``: readable at a glance, and showing *where*.

- ``dlogits.png`` (the lecture's check only): the lecture's gray image of ``dlogits``.
- ``errors.png``: one panel per reference (and mode, with ``--jit both``), one line per row: its
  error in eps·scale on a symmetric-log axis (0 is bit-exact, 1e7 a wrong formula, both
  visible), its bound drawn as a black tick, and a legend entry for every colour and marker the
  figure uses (and only those). A panel whose rows are all bit-exact says so instead of drawing a
  meaningless -0.04..0.04 axis. The figure is sized by its rows and laid out by matplotlib's
  constrained layout, so no two labels overlap (tested by measuring their extents).
- ``where_<against>_<row>.png`` (``where_<against>_<mode>_<row>.png`` with ``--jit both``), for
  each failing row of every reference and mode whose values can be compared (the lecture's
  ``fused`` and ``torch-manual`` rows too; ``fd`` rows checked element by element; at most
  :data:`MAX_MAPS` in all, in the table's order): the per-element map of
  ``|mine - reference| / (eps·scale)`` on a log colour scale, the :data:`WORST` largest elements
  circled and listed with their indices. A row of 3 or more axes is drawn as
  ``(shape[0], rest)``; a vector as one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from jaxninja.errors import ConfigError  # noqa: E402
from jaxninja.io.atomic import save_figure  # noqa: E402

MAX_MAPS = 12
"""Per-element maps written at most (the first failing rows: where mistakes start)."""

WORST = 5
"""Elements circled and listed on each per-element map."""

EXACT, WITHIN, OVER, UNMEASURED = "bit-exact", "within its bound", "over its bound", "not measured"
COLOURS = {EXACT: "tab:green", WITHIN: "tab:blue", OVER: "tab:red", UNMEASURED: "tab:gray"}
"""One colour per kind of row; each kind drawn gets one legend entry."""


def save_plots(result, folder: str | Path) -> list[Path]:
    """Write ``dlogits.png`` (the lecture's check only), ``errors.png`` and the failing rows'
    per-element maps into ``folder`` (created if needed)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--plot {folder}: exists and is not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if getattr(result, "dlogits", None) is not None:
        written.append(_dlogits(result.dlogits, folder / "dlogits.png"))
    written.append(_save(errors_figure(result.rows), folder / "errors.png"))
    several = len({getattr(r, "mode", "") for r in result.rows}) > 1
    for row, mine, ref in failing_arrays(result)[:MAX_MAPS]:
        mode = row.mode if several else ""  # --jit both: a map per mode
        fig = element_map_figure(row, mine, ref, mode)
        name = f"where_{_safe(row.against)}_{mode + '_' if mode else ''}{_safe(row.name)}.png"
        written.append(_save(fig, folder / name))
    return written


def _save(fig, path: Path) -> Path:
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def _safe(name: str) -> str:
    """A row or reference name as a file name part (``loss (fwd)`` becomes ``loss_fwd``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "row"


def _dlogits(dlogits: np.ndarray, path: Path) -> Path:
    """The (n, V) matrix as a gray image: the dark cell of each row is the target's -(1-p)/n."""
    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    ax.imshow(dlogits, cmap="gray")
    ax.set_title("dlogits (n × vocab)")
    ax.set_xlabel("character")
    ax.set_ylabel("example in batch")
    return _save(fig, path)


# ----------------------------------------------------------------------------- errors.png


def kind(row) -> str:
    """Which colour a row gets."""
    if not np.isfinite(row.eps_scale):
        return UNMEASURED
    if row.exact:
        return EXACT
    return WITHIN if row.ok else OVER


def _panels(rows: list) -> list[tuple[str, list]]:
    """(title, rows) per reference, and per mode when the rows hold several."""
    several = len({getattr(r, "mode", "") for r in rows}) > 1
    keys = dict.fromkeys((r.against, getattr(r, "mode", "")) for r in rows)
    return [
        (f"vs {ref}" + (f" ({mode})" if several else ""),
         [r for r in rows if r.against == ref and getattr(r, "mode", "") == mode])
        for ref, mode in keys
    ]  # fmt: skip


def errors_figure(rows: list):
    """The errors chart (module docstring) as a matplotlib figure."""
    panels = _panels(rows)
    n = max((len(rs) for _, rs in panels), default=1)
    cols = min(len(panels), 4)
    grid = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        grid,
        cols,
        figsize=(4.2 * cols, grid * (1.6 + 0.24 * n) + 1.0),
        squeeze=False,
        layout="constrained",
    )
    used: dict[str, bool] = {}
    bound_drawn = False
    for ax, (title, rs) in zip(axes.flat, panels, strict=False):
        bound_drawn |= _panel(ax, title, rs, used)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=COLOURS[k], marker=_MARKERS.get(k, "s"), linestyle="", label=k)
        for k in COLOURS
        if used.get(k)
    ]
    if bound_drawn:
        handles.append(Line2D([], [], color="black", marker="|", linestyle="", ms=12,
                              label="bound (eps·scale)"))  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle("manual gradient: error per row in eps·scale = max|mine - ref| / (eps · scale)")
    return fig


_MARKERS = {EXACT: "o", UNMEASURED: "x"}


def _panel(ax, title: str, rows: list, used: dict[str, bool]) -> bool:
    """One reference's rows; returns whether a bound tick was drawn."""
    y = np.arange(len(rows))
    kinds = [kind(r) for r in rows]
    for k in kinds:
        used[k] = True
    ax.set_title(title)
    ax.set_yticks(y, [r.name for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    if all(k == EXACT for k in kinds):  # nothing to scale: say so, draw no axis
        ax.scatter(np.zeros(len(rows)), y, color=COLOURS[EXACT], marker="o", s=16)
        ax.set_xticks([])
        ax.set_xlim(-1, 1)
        ax.set_xlabel(f"all {len(rows)} rows bit-exact")
        return False
    values = np.array([r.eps_scale if np.isfinite(r.eps_scale) else 0.0 for r in rows])
    bars = np.array([k in (WITHIN, OVER) for k in kinds])
    ax.barh(y[bars], values[bars], color=[COLOURS[k] for k in kinds if k in (WITHIN, OVER)])
    for k, marker in _MARKERS.items():
        at = [i for i, kk in enumerate(kinds) if kk == k]
        if at:
            ax.scatter(np.zeros(len(at)), y[at], color=COLOURS[k], marker=marker, s=16, zorder=3)
    bounds = np.array([r.bound for r in rows], dtype=float)
    has = bounds > 0
    if has.any():
        ax.scatter(bounds[has], y[has], color="black", marker="|", s=120, zorder=4)
    top = max(float(values.max(initial=0)), float(bounds.max(initial=0)), 1.0)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, top * 3)
    ax.set_xlabel("eps·scale (0 = bit-exact)" + ("" if has.any() else "; bound: bit-exact"))
    return bool(has.any())


# ----------------------------------------------------------------------------- where


def failing_arrays(result) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """(row, mine, reference) of each failing row whose arrays the result holds with the same
    shape, in the table's order: every reference's and every mode's (``result.pairs``, keyed by
    mode, reference and row: the lecture's ``fused`` and ``torch-manual`` rows, ``fd`` rows
    checked element by element against their central differences); without ``pairs``, the
    manual gradients against ``jax.grad``'s (``reference``) and torch's (``autograd``)."""
    pairs = getattr(result, "pairs", None)
    if pairs is None:
        manual = getattr(result, "manual", None) or {}
        refs = {
            "jax": getattr(result, "reference", None),
            "torch": getattr(result, "autograd", None),
        }
        pairs = {
            (getattr(r, "mode", ""), r.against, r.name): (manual[r.name], refs[r.against][r.name])
            for r in result.rows
            if r.against in refs and r.name in manual and r.name in (refs[r.against] or {})
        }
    out = []
    for row in result.rows:
        pair = pairs.get((getattr(row, "mode", ""), row.against, row.name))
        if row.ok or pair is None:
            continue
        mine, ref = np.asarray(pair[0]), np.asarray(pair[1])
        if mine.shape == ref.shape and np.isfinite(row.eps_scale) and row.eps_scale > 0:
            out.append((row, mine, ref))
    return out


def _as_2d(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(a.shape[0], -1)


def worst_elements(ratio: np.ndarray, k: int = WORST) -> list[tuple[int, ...]]:
    """The indices of the ``k`` largest entries of ``ratio`` (largest first, finite or not)."""
    flat = np.where(np.isnan(ratio), np.inf, ratio).ravel()
    k = min(k, flat.size)
    order = np.argsort(-flat, kind="stable")[:k]
    return [tuple(int(i) for i in np.unravel_index(j, ratio.shape)) for j in order]


def element_map_figure(row, mine: np.ndarray, ref: np.ndarray, mode: str = ""):
    """``|mine - ref| / (eps·scale)`` per element, the worst circled (module docstring); the
    unit is the row's own (``maxdiff / eps_scale``), so a zero-by-symmetry row keeps its
    borrowed scale. ``mode``: named in the title (``--jit both``'s maps, one per mode)."""
    unit = row.maxdiff / row.eps_scale
    ratio = np.abs(mine.astype(np.float64) - ref.astype(np.float64)) / unit
    flat2d = _as_2d(ratio)
    worst = worst_elements(ratio)
    rows2d, cols2d = flat2d.shape
    width = min(12.0, 3.0 + 0.12 * cols2d)
    height = min(10.0, 2.6 + 0.12 * rows2d)
    fig, (ax, note) = plt.subplots(
        1, 2, figsize=(width + 3.2, height), layout="constrained",
        gridspec_kw={"width_ratios": [width, 3.2]},
    )  # fmt: skip
    positive = flat2d[flat2d > 0]
    vmin = max(float(positive.min()), 1e-2) if positive.size else 1e-2
    vmax = max(float(flat2d.max(initial=0)), vmin * 10)
    image = ax.imshow(
        np.maximum(flat2d, vmin), cmap="magma", norm=LogNorm(vmin, vmax), aspect="auto",
        interpolation="nearest",
    )  # fmt: skip
    fig.colorbar(image, ax=ax, label="|mine - ref| / (eps·scale)")
    at2d = [_flat_index(i, ratio.shape, flat2d.shape) for i in worst]
    ax.scatter([c for _, c in at2d], [r for r, _ in at2d], s=160, facecolors="none",
               edgecolors="cyan", linewidths=1.5)  # fmt: skip
    shape = "x".join(str(d) for d in mine.shape) or "scalar"
    against = f"{row.against}, {mode}" if mode else row.against
    ax.set_title(f"{row.name} vs {against}: where it differs ({shape})", fontsize=10)
    ax.set_xlabel("column" if mine.ndim <= 2 else "flattened trailing axes")
    ax.set_ylabel("row" if mine.ndim >= 2 else "")
    bound = "bit-exact" if row.bound == 0 else f"{row.bound:.3g} eps·scale"
    lines = [f"bound: {bound}", f"max: {row.eps_scale:.3g} eps·scale", "", "worst (circled):"]
    lines += [f"{idx}: {ratio[idx]:.3g}" for idx in worst]
    note.axis("off")
    note.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace")
    return fig


def _flat_index(index: tuple[int, ...], shape: tuple[int, ...], shape2d: tuple[int, int]):
    """Where an element of ``shape`` sits in its ``_as_2d`` picture: (row, column)."""
    flat = int(np.ravel_multi_index(index, shape)) if shape else 0
    return divmod(flat, shape2d[1])


def text_extents(fig) -> Iterable[tuple[str, Any]]:
    """(text, window extent) of every visible, non-empty text of ``fig`` once drawn: what the
    tests measure for overlaps."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for t in fig.findobj(matplotlib.text.Text):
        if t.get_visible() and t.get_text().strip() and _shown(t):
            yield t.get_text(), t.get_window_extent(renderer)


def _shown(t) -> bool:
    """Whether a text artist is drawn: its axes (if any) visible, a tick label of a visible
    tick."""
    ax = t.axes
    return ax is None or ax.get_visible()
