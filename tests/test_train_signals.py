"""Ctrl-C and SIGTERM during ``jaxninja train``: a checkpoint at a step boundary, 130/143, one line.

These run the real command in a subprocess (the signal must reach a real process) and are the
slowest default tests: a fresh process imports jax and compiles the small model once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jaxninja.checkpoint import load_checkpoint
from jaxninja.data import default_words


@pytest.mark.parametrize(
    "signum, status",
    [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
)  # SIGTERM takes the same path with another number: in the slow run, to keep the default short
def test_signal_saves_a_checkpoint_and_exits_with_one_line(tmp_path: Path, signum, status):
    words = tmp_path / "words.txt"
    words.write_text("\n".join(default_words()[:2000]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(words),
        "--steps",
        "100000000",
        "--n-embd",
        "4",
        "--n-hidden",
        "16",
        "--out",
        str(out),
        "--samples",
        "0",
    ]
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxninja", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
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
