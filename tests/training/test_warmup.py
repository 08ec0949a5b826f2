"""The warm-up thread (jaxninja/training/warmup.py): it runs its tasks in order, starts none after
stop(), and a failing task ends it quietly (the real finishing step reports its own failure)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from jaxninja.training.warmup import Warmup


def blocking() -> tuple[Callable[[], None], threading.Event, threading.Event]:
    """A task that says it has started, then waits to be let go: (task, started, go)."""
    started, go = threading.Event(), threading.Event()

    def task() -> None:
        started.set()
        go.wait()

    return task, started, go


def test_tasks_run_in_order_until_stopped_and_a_failure_ends_quietly():
    ran: list[str] = []
    wait, started, go = blocking()
    warm = Warmup([("a", lambda: ran.append("a")), ("b", wait), ("c", lambda: ran.append("c"))])
    started.wait(timeout=60)
    warm.stop()  # while "b" waits: "c" never starts
    go.set()
    warm.join()
    assert ran == ["a"] and warm.done == ["a", "b"]

    def boom() -> None:
        raise MemoryError("out of memory")

    failed = Warmup([("boom", boom), ("after", lambda: ran.append("after"))])
    failed.join()
    assert failed.done == [] and ran == ["a"]


def test_the_first_chunk_stops_the_warm_up_then_reports():
    """What the loops get as on_chunk: the warm-up starts no task after the first chunk."""
    seen: list[str] = []
    wait, started, go = blocking()
    warm = Warmup([("first", wait), ("later", lambda: seen.append("later"))])
    started.wait(timeout=60)
    warm.stopping_first(seen.append)("chunk 1")
    go.set()
    warm.join()
    assert seen == ["chunk 1"] and warm.done == ["first"]
