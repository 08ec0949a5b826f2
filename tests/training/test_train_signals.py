"""Ctrl-C and SIGTERM during ``jaxninja train``: a checkpoint at a step boundary, 130/143, one line.

These run the real command in a subprocess (the signal must reach a real process) and are the
slowest default tests: a fresh process imports jax and compiles the small model once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxninja.data import default_words
from jaxninja.io.checkpoint import load_checkpoint
from tests.helpers import ROOT


def start_train(tmp_path: Path, steps: int, *flags: str, stdout=subprocess.PIPE):
    """``python -m jaxninja train`` on 2,000 census names, a tiny model, into tmp_path/run."""
    words = tmp_path / "words.txt"
    words.write_text("\n".join(default_words()[:2000]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(words), "--steps", str(steps), "--n-embd", "4"]
    argv += ["--n-hidden", "16", "--out", str(out), *flags]
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxninja", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    return proc, out


@pytest.mark.parametrize(
    "signum, status",
    [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
)  # SIGTERM takes the same path with another number: in the slow run, to keep the default short
def test_signal_saves_a_checkpoint_and_exits_with_one_line(tmp_path: Path, signum, status):
    proc, out = start_train(tmp_path, 100_000_000, "--samples", "0")
    try:
        header = proc.stdout.readline()  # printed once the signal handlers are in place
        assert header.startswith("training on"), header + proc.stderr.read()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == status, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    name = signal.Signals(signum).name
    assert lines[0].startswith(f"jaxninja: {name} at step ") and "--resume" in lines[0]
    ckpt = load_checkpoint(out)
    assert ckpt.step > 0 and ckpt.step % 1000 == 0  # a chunk boundary, i.e. a step boundary
    assert f"step {ckpt.step:,}:" in lines[0] and str(out / "checkpoint.npz") in lines[0]
    assert not (out / "summary.json").exists()  # the run did not finish


# Ctrl-C at any moment: imports, loading, compiling, the first chunk, checkpointing, finishing.
# Each offset is seconds after jaxninja's first line ran (its signal handling in place; before
# that the interpreter itself is starting, site and runpy, and a Ctrl-C there is the
# interpreter's, which no program can turn into its own line). The default run keeps two (during
# the imports and during the first compile); -m slow sweeps the start-up and the first chunks.
DEFAULT_OFFSETS = [0.05, 1.8]
SLOW_OFFSETS = [0.0, 0.1, 0.3, 0.6, 1.0, 1.4, 2.2, 2.6, 3.0, 3.5, 4.0, 5.0, 6.5]
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)  # in /proc/PID/status's SigCgt mask of caught signals


def wait_for_jaxninja(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``proc`` runs jaxninja's code: ``python -m jaxninja``'s first line catches SIGTERM,
    which the interpreter alone never does, so its bit in the SigCgt mask (Linux's
    /proc/PID/status) says the command's signal handling is in place. A fixed delay from the
    start was not enough: at high load the interpreter was still starting 0.15 s in."""
    status = Path(f"/proc/{proc.pid}/status")
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            text = status.read_text()
        except OSError:  # gone between poll() and the read: the caller sees its status
            return
        caught = next(line for line in text.splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & SIGTERM_BIT:
            return
        time.sleep(0.002)
    assert proc.poll() is not None, f"jaxninja did not start within {timeout} s"


def interrupt_at(tmp_path: Path, offset: float) -> tuple[int, str, Path]:
    """Start a short ``jaxninja train``, send SIGINT ``offset`` s after jaxninja's first line
    ran; (status, stderr, out)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc/PID/status to see when jaxninja's code runs")
    flags = ("--samples", "3", "--checkpoint-every", "1000")
    proc, out = start_train(tmp_path, 3000, *flags, stdout=subprocess.DEVNULL)
    try:
        wait_for_jaxninja(proc)
        try:
            proc.wait(timeout=offset)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)  # bounded: a lost Ctrl-C would hang here
    finally:
        proc.kill()
    return proc.returncode, stderr, out


def assert_one_line_and_safe(status: int, stderr: str, out: Path) -> None:
    shown = f"status {status}, stderr {stderr!r}"
    if status == 0:  # finished before the signal came: a complete run
        assert stderr == "" and (out / "summary.json").exists(), shown
        return
    lines = stderr.splitlines()
    assert status == 130 and len(lines) == 1 and "Traceback" not in stderr, shown
    assert lines[0].startswith("jaxninja: "), shown
    if (out / "checkpoint.npz").exists():  # whatever was saved loads, at a step boundary
        ckpt = load_checkpoint(out)
        assert ckpt.step % 1000 == 0, shown
        if "safe in" in lines[0] or "saved to" in lines[0]:
            assert str(out / "checkpoint.npz") in lines[0], shown


@pytest.mark.parametrize("offset", DEFAULT_OFFSETS)
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path: Path, offset: float) -> None:
    assert_one_line_and_safe(*interrupt_at(tmp_path, offset))


@pytest.mark.slow
@pytest.mark.parametrize("offset", SLOW_OFFSETS)
def test_ctrl_c_at_many_offsets_is_one_line_and_130(tmp_path: Path, offset: float) -> None:
    assert_one_line_and_safe(*interrupt_at(tmp_path, offset))
