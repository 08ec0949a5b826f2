"""The warm-up thread (jaxninja/warmup.py): it runs its tasks in order, starts none after
stop(), and a failing task ends it quietly (the real finishing step reports its own failure)."""

from __future__ import annotations

import threading

from jaxninja.warmup import Warmup


def test_tasks_run_in_order_until_stopped_and_a_failure_ends_quietly():
    ran: list[str] = []
    go = threading.Event()
    warm = Warmup([("a", lambda: ran.append("a")), ("b", go.wait), ("c", lambda: ran.append("c"))])
    warm.stop()  # while "b" waits: "c" never starts
    go.set()
    warm.join()
    assert ran == ["a"] and warm.done == ["a", "b"]

    def boom() -> None:
        raise MemoryError("out of memory")

    failed = Warmup([("boom", boom), ("after", lambda: ran.append("after"))])
    failed.join()
    assert failed.done == [] and ran == ["a"]
