"""The warm-up thread (jaxninja/warmup.py): it runs its tasks in order, starts none after
stop(), and a failing task ends it quietly (the real finishing step reports its own failure)."""

from __future__ import annotations

import threading

from jaxninja.warmup import Warmup


def test_tasks_run_in_order_until_stopped_and_a_failure_ends_quietly():
    ran: list[str] = []
    started, go = threading.Event(), threading.Event()

    def b() -> None:
        started.set()
        go.wait()

    warm = Warmup([("a", lambda: ran.append("a")), ("b", b), ("c", lambda: ran.append("c"))])
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
    started, go = threading.Event(), threading.Event()

    def first() -> None:
        started.set()
        go.wait()

    warm = Warmup([("first", first), ("later", lambda: seen.append("later"))])
    started.wait(timeout=60)
    warm.stopping_first(seen.append)("chunk 1")
    go.set()
    warm.join()
    assert seen == ["chunk 1"] and warm.done == ["first"]
