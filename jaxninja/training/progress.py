"""The training progress bar: step, loss and steps/s, fed by each chunk's ``ChunkReport``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from jaxninja.training.loop import ChunkReport

LOG_EVERY = 10_000  # without a terminal (logs, CI) print one line per this many steps


class Progress:
    """A tqdm bar on a terminal or in a notebook; elsewhere (or with ``TQDM_DISABLE=1``, as when
    the notebooks are built), a log line per 10,000 steps.

    The rate shown is the last chunk's, measured by the loop; tqdm's own average would include
    the compile of the first chunk. :meth:`close` may be called any number of times.
    """

    FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} steps [{elapsed}<{remaining}{postfix}]"

    def __init__(self, start: int, total: int):
        self.bar = tqdm(
            total=total,
            initial=start,
            disable=True if os.environ.get("TQDM_DISABLE") else None,  # tqdm's own switch
            dynamic_ncols=True,
            bar_format=self.FORMAT,
            postfix="compiling",
        )
        self.last_log = start
        self.closed = False

    def __call__(self, report: ChunkReport) -> None:
        rate = report.n_steps / max(report.seconds, 1e-9)
        shown = "compiling" if report.compiled else f"{rate:,.0f} steps/s"
        self.bar.set_postfix_str(f"loss {report.loss:.4f}, {shown}", refresh=False)
        self.bar.update(report.n_steps)
        if self.bar.disable and report.step // LOG_EVERY > self.last_log // LOG_EVERY:
            print(f"step {report.step:,}: loss {report.loss:.4f}, {rate:,.0f} steps/s", flush=True)
            self.last_log = report.step

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bar.close()


def reporter(
    progress: bool | Callable[[ChunkReport], None], start: int, end: int
) -> tuple[Progress | None, Callable[[ChunkReport], None] | None]:
    """What a loop reports each chunk to: a bar (``progress`` True; the caller closes it),
    nothing (False), or the caller's function."""
    bar = Progress(start, end) if progress is True else None
    return bar, (bar if bar is not None else (progress or None))
