"""The programs that finish a run, compiled on a second thread while the run starts.

After the loop a run calibrates BatchNorm, evaluates the splits, samples names and plots the
loss; each of those compiles an XLA program on first use, and the plot imports matplotlib:
about 2 s one after the other, while nothing else happens. Their shapes are known before the
loop starts, so :func:`start` does that work on a thread beside the start of the run (the
parameters' draw, the loop's compile), under the caller's jax settings
(:mod:`jaxninja.background`): each finishing function is called once on arrays of the run's
shapes, which fills jax's compilation cache for the real calls. On two cores it shares them
with the loop's compile (XLA compiles on both), so it saves less than it does work, but it
saves (README, "How fast the command is"). Nothing it computes is kept, and what fails here is
left to fail again, with its one line, in the real finishing step.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import jax
import numpy as np

from jaxninja import background
from jaxninja.checks import float_dtype
from jaxninja.config import TrainConfig
from jaxninja.data import Dataset
from jaxninja.lecture.model import BNStats, Params, param_shapes
from jaxninja.training.evaluate import SAMPLE_BATCH, calibrate, sample_key, sample_names, split_loss
from jaxninja.training.loop import ChunkReport


class Warmup:
    """The warm-up thread: its tasks run one after the other until :meth:`stop` (the loop's
    first chunk is done: from then on a task would take the core or the GIL from the loop);
    the tasks not started then are left to the finishing steps themselves."""

    def __init__(self, tasks: list[tuple[str, Callable[[], object]]]):
        self.done: list[str] = []
        self._stop = threading.Event()
        settings = background.local_settings()  # the caller's: the programs the real calls look up
        self._thread = threading.Thread(
            target=self._run, args=(tasks, settings), name="jaxninja-warmup", daemon=True
        )
        self._thread.start()

    def _run(self, tasks: list[tuple[str, Callable[[], object]]], settings: list | None) -> None:
        if settings is None:  # this jax cannot tell them: warm up under its global settings
            self._tasks(tasks)
        else:
            background.with_settings(settings, lambda: self._tasks(tasks))

    def _tasks(self, tasks: list[tuple[str, Callable[[], object]]]) -> None:
        for name, task in tasks:
            if self._stop.is_set():
                return
            try:
                task()
            except Exception:  # a warm-up only: the real step reports its own failure
                return
            self.done.append(name)

    def stop(self) -> None:
        """Start no more tasks."""
        self._stop.set()

    def stopping_first(
        self, on_chunk: Callable[[ChunkReport], None] | None
    ) -> Callable[[ChunkReport], None]:
        """``on_chunk`` that first stops the warm-up: the loop runs alone once its first chunk
        is done."""

        def report(chunk: ChunkReport) -> None:
            self.stop()
            if on_chunk is not None:
                on_chunk(chunk)

        return report

    def join(self) -> None:
        """Stop, and wait for the task in progress (jax must not be left compiling at exit)."""
        self.stop()
        self._thread.join()


def start(config: TrainConfig, dataset: Dataset, samples: int, device: jax.Device | None) -> Warmup:
    """Warm up a run's finishing steps (sampling ``samples`` names, the plot, the split losses,
    calibration), the costliest first (``device``: where the run's arrays are committed, None
    for jax's default device, uncommitted)."""
    shapes = param_shapes(dataset.vocab.size, config.n_embd, config.n_hidden, config.block_size)
    dtype = float_dtype(config.dtype)
    params = jax.device_put(Params(*(np.zeros(s, dtype) for s in shapes)), device)
    stats = jax.device_put(BNStats(*(np.ones(shapes[-1], dtype),) * 2))
    x, y = dataset.train.x[:2], dataset.train.y[:2]
    num = min(samples, SAMPLE_BATCH)  # the first batch's shape
    tasks: list[tuple[str, Callable[[], object]]] = []
    if samples:

        def sample() -> None:  # one character of each name: the same program as the real run
            sample_names(params, stats, dataset.vocab, num, sample_key(config.seed), 1)

        tasks.append(("sampling", sample))
    tasks.append(("plot", _plot_nothing))
    tasks.append(("evaluating", lambda: split_loss(params, stats, x, y)))
    tasks.append(("calibrating", lambda: calibrate(params, x)))
    return Warmup(tasks)


def _plot_nothing() -> None:
    """Import matplotlib and draw a plot into memory (its first figure loads fonts)."""
    from jaxninja.training.plots import plot_loss

    plot_loss(np.ones(2, np.float32), io.BytesIO())
