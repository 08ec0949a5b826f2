"""The time a layer's derivation may take, with progress while it runs.

A stated layer is a stranger's input: a chain of 12 lines each using the last twice expands to
2^12 terms and sympy would run for many minutes in silence. :func:`limited` bounds the derivation
and the proofs of one layer to :data:`SECONDS` (a one-line :class:`OverBudget` past it) and
reports the step under way every :data:`PROGRESS_SECONDS` through a callback (the CLI prints it to
stderr); a short run prints nothing. The bound is a POSIX interval timer in the main thread
(sympy is pure Python, so the timer's signal interrupts it); elsewhere (another thread, Windows)
the derivation runs unbounded and the size budget
(:data:`derivations.engine.derive.MAX_GRADIENT_NODES`) still refuses the large gradients.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from derivations.language.names import LayerError

SECONDS = 120.0
"""One layer's derivation, proofs and counterexample searches (every example takes under 25 s;
each claim's search has its own 20 s budget)."""

PROGRESS_SECONDS = 5.0
"""How often a long derivation says where it is."""


class OverBudget(LayerError):
    """A layer whose derivation passed :data:`SECONDS`."""


class Steps:
    """The step under way, in words, for the progress lines and the refusal."""

    def __init__(self) -> None:
        self.now = "starting"

    def __call__(self, step: str) -> None:
        self.now = step


@contextmanager
def limited(
    name: str, progress: Callable[[str], None] | None = None, seconds: float | None = None
) -> Iterator[Steps]:
    """Run the block within ``seconds`` (default :data:`SECONDS`); the block names its steps by
    calling the :class:`Steps` it is given. Past the budget: :class:`OverBudget` naming the step."""
    limit = SECONDS if seconds is None else seconds
    steps = Steps()
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield steps
        return
    start = time.monotonic()

    def tick(signum, frame) -> None:
        elapsed = time.monotonic() - start
        if elapsed >= limit:
            # the timer keeps running: a raise that lands in a finaliser (__del__) is swallowed
            # by Python, and the next tick raises again
            raise OverBudget(
                f"layer {name}: past the derive budget of {limit:g} s while {steps.now}: the "
                "forward's written-out form grows too fast (a chain of lines each using the "
                "last twice doubles it); state fewer or simpler lines"
            )
        if progress is not None:
            progress(f"derive: {steps.now}, {elapsed:.0f} s of the {limit:g} s budget")

    interval = min(PROGRESS_SECONDS, limit)
    previous = signal.signal(signal.SIGALRM, tick)
    signal.setitimer(signal.ITIMER_REAL, interval, interval)
    try:
        yield steps
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
