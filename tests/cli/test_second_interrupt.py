"""A second Ctrl-C during a chunk stops ``jaxninja train`` at once, without saving: the checkpoint
of the last boundary is kept. Python merges a signal that arrives again before its handler ran,
and the handler runs only when the main thread is back in Python, so a second Ctrl-C while a
chunk runs in XLA used to be lost (the run stopped at the chunk's end, 14-24 s later).

Real processes and real signals, 50 ms apart (a quick double Ctrl-C; signals sent back to back
within microseconds are merged by the kernel itself, which no program can tell apart). The
default test holds the main thread in one long numpy product, as a chunk holds it in XLA; the
slow one is the real command: a model large enough that one chunk lasts tens of seconds on a
CPU, resumed from a checkpoint at step 10 so the chunk it runs ends at step 1,000. Had the
second signal been merged into the first, the run would stop at that boundary and save step
1,000; it must instead leave with step 10 kept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxninja.io.checkpoint import load_checkpoint
from tests.helpers import ROOT

BIG = ["--n-embd", "32", "--block-size", "8", "--n-hidden", "1024", "--batch-size", "512"]
START_S = 300  # a fresh process imports jax, loads the words and compiles (loaded machine)
LEAVE_S = 10  # from the second signal to the exit: immediate, plus the one line's write
GAP_S = 0.05  # between the two signals: both inside the same chunk, as a quick double Ctrl-C
WAIT_S = 3  # after the header: the chunk is running (or compiling: the main thread is in C++)
HOLD = """
import os, signal, sys, threading, time
import numpy as np
from jaxninja._cli import signals

def send():
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(float(sys.argv[1]))
    os.kill(os.getpid(), signal.SIGINT)

with signals.installed() as policy:
    policy.stop_phase()
    a = np.ones((3000, 3000))
    threading.Thread(target=send).start()
    t = time.monotonic()
    a @ a  # seconds in BLAS with the GIL released; no Python bytecode runs on the main thread
    print(f"matmul done after {time.monotonic() - t:.1f} s, caught {policy.caught}", flush=True)
"""


def command(words: Path, out: Path, *flags: str) -> list[str]:
    argv = [sys.executable, "-m", "jaxninja", "train", "--data", str(words), *BIG]
    return [*argv, "--samples", "0", "--out", str(out), *flags]


def test_a_second_signal_while_the_main_thread_is_in_c_leaves_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HOLD, str(GAP_S)], cwd=ROOT, capture_output=True, text=True,
        timeout=START_S,
    )  # fmt: skip
    assert done.returncode == 130, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr.startswith("jaxninja: interrupted twice")


@pytest.mark.slow  # two jax processes compiling a large model: about a minute
def test_a_second_ctrl_c_during_a_chunk_stops_at_once(words_file: Path, tmp_path: Path) -> None:
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    first = subprocess.run(
        command(words_file, out, "--steps", "10"), env=env, capture_output=True, text=True,
        timeout=START_S,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen(
        command(words_file, out, "--resume", str(out), "--steps", "100000"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        header = proc.stdout.readline()  # printed once a signal means "stop at the boundary"
        assert header.startswith("training on"), header + proc.stderr.read()
        time.sleep(WAIT_S)
        proc.send_signal(signal.SIGINT)
        time.sleep(GAP_S)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=START_S)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    lines = stderr.splitlines()
    assert proc.returncode == 130 and len(lines) == 1, stderr
    assert lines[0].startswith("jaxninja: interrupted twice; stopped without saving"), lines
    assert took < LEAVE_S, f"left {took:.1f} s after the second signal"
    assert load_checkpoint(out).step == 10  # the last boundary's checkpoint, kept


OWN = """
import os, signal, time
from jaxninja._cli import signals

got = []
with signals.installed():
    signal.signal(signal.SIGINT, lambda s, f: got.append(s))  # as `jaxninja launch` does
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # the watcher has read the byte by now
print("own handler ran", got, flush=True)
"""


def test_a_command_with_its_own_handler_keeps_its_signals() -> None:
    """``jaxninja launch`` forwards signals with its own handler: the watcher leaves them be."""
    done = subprocess.run(
        [sys.executable, "-c", OWN], cwd=ROOT, capture_output=True, text=True, timeout=START_S
    )
    assert done.returncode == 0 and done.stdout == "own handler ran [2]\n", done.stderr


STUCK = """
import sys
from jaxninja._cli import signals

with signals.installed() as policy:
    policy.stop_phase()
    print("ready", file=sys.stderr, flush=True)
    while True:  # nobody reads stdout: the pipe fills and this write blocks, holding its lock
        sys.stdout.write("x" * 65536)
"""


def test_a_second_signal_leaves_even_when_stdout_is_stuck() -> None:
    """The watcher's exit does not wait on a stream the main thread holds, blocked."""
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr.readline() == b"ready\n"
        time.sleep(0.5)  # the pipe is full by now
        proc.send_signal(signal.SIGINT)
        time.sleep(GAP_S)
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=LEAVE_S)
    finally:
        proc.kill()
    assert status == 130
    assert proc.stderr.read().startswith(b"jaxninja: interrupted twice")
