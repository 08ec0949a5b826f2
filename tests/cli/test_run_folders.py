"""One run per folder through the command line: ``--overwrite`` across the two kinds of run in
both directions, then ``sample`` / ``evaluate`` / ``--resume`` of what is left; user files and
an empty ``--out``; two ``jaxninja train`` processes into one folder at the same time.

Short runs of a tiny model on the offline default word list (a few seconds each).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxninja._cli import main
from jaxninja.io import lock
from tests.helpers import ROOT, SMALL_FLAGS

STEPS = ["--steps", "100", "--samples", "0"]
START_WAIT_S = 120  # the first writer imports jax and takes the lock (seconds, loaded machine)
EXIT_WAIT_S = 60


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``jaxninja ARGV`` in this process: status, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, words: Path, out: Path | str, *extra: str) -> tuple[int, str, str]:
    data = ["--data", str(words), "--out", str(out)]
    return run(capsys, "train", *SMALL_FLAGS, *STEPS, *data, *extra)


def refused(result: tuple[int, str, str], *parts: str) -> None:
    code, _, err = result
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("jaxninja: error:"), err
    for part in parts:
        assert part in lines[0], lines[0]


def top(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # no lock file once a run has ended


def test_overwrite_replaces_either_kind_and_readers_see_one_run(words_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert train(capsys, words_file, out)[0] == 0
    summary = (out / "summary.json").read_bytes()
    assert train(capsys, words_file, out, "--seeds", "2", "--overwrite")[0] == 0
    assert top(out) == ["loss.png", "run-00", "run-01", "runs.json", "summary.json"]
    assert (out / "summary.json").read_bytes() != summary  # the multi-run's own
    refused(run(capsys, "sample", "--checkpoint", str(out)), "not one run", str(out / "run-00"))
    refused(run(capsys, "evaluate", "--checkpoint", str(out)), "not one run")
    assert run(capsys, "sample", "--checkpoint", str(out / "run-01"), "--num", "2")[0] == 0
    code, text, _ = run(capsys, "evaluate", "--checkpoint", str(out / "run-00"))
    assert code == 0 and "at step 100" in text
    assert train(capsys, words_file, out, "--resume", str(out), "--steps", "200")[0] == 0

    assert train(capsys, words_file, out, "--overwrite")[0] == 0
    assert top(out) == [
        "checkpoint.npz",
        "loss.png",
        "losses.npy",
        "summary.json",
        "val_losses.npy",
    ]
    assert run(capsys, "sample", "--checkpoint", str(out), "--num", "2")[0] == 0
    code, text, _ = run(capsys, "evaluate", "--checkpoint", str(out))
    assert code == 0 and "at step 100" in text
    code = run(capsys, "train", "--resume", str(out), "--steps", "200", "--samples", "0")[0]
    assert code == 0


def test_a_folder_of_two_kinds_is_refused_by_every_reader(words_file, tmp_path, capsys):
    """A folder an older jaxninja left with both kinds: no reader picks one silently."""
    out = tmp_path / "out"
    assert train(capsys, words_file, out / "a")[0] == 0
    assert train(capsys, words_file, out / "b", "--seeds", "2")[0] == 0
    for name in os.listdir(out / "b"):
        os.rename(out / "b" / name, out / "a" / name)
    both = out / "a"
    for argv in (
        ["sample", "--checkpoint", str(both)],
        ["evaluate", "--checkpoint", str(both)],
        ["train", "--resume", str(both), "--steps", "200"],
    ):
        refused(run(capsys, *argv), "holds two runs", "checkpoint.npz", "runs.json")


@pytest.mark.parametrize(
    ("files", "parts"),
    [
        (["summary.json"], ["summary.json of a run but no checkpoint.npz", "--overwrite"]),
        (["loss.png", "losses.npy"], ["loss.png, losses.npy of a run but no checkpoint.npz"]),
        (["words.txt"], ["files jaxninja did not write (words.txt)"]),
    ],
)
def test_a_folder_without_a_run_is_not_written_into(words_file, tmp_path, capsys, files, parts):
    out = tmp_path / "out"
    out.mkdir()
    for name in files:
        (out / name).write_text("mine")
    refused(train(capsys, words_file, out), f"--out {out}", *parts)
    assert all((out / name).read_text() == "mine" for name in files)
    assert train(capsys, words_file, out, "--overwrite")[0] == 0
    assert (out / "checkpoint.npz").is_file()
    if "words.txt" in files:
        assert (out / "words.txt").read_text() == "mine"  # a stranger's file is kept


def test_an_empty_out_is_refused(words_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(train(capsys, words_file, ""), "--out '': an empty path")
    refused(train(capsys, words_file, "", "--seeds", "2"), "--out '': an empty path")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # three jax processes, about 25 s; the lock between processes is also
def test_two_writers_into_one_folder_one_is_refused(words_file, tmp_path):  # tests/io's
    """Real processes: the first trains (long), the second is refused in one line naming the
    first's pid; the first, stopped by a signal, saves and releases the folder."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "jaxninja", "train", *SMALL_FLAGS, "--data", str(words_file)]
    argv += ["--out", str(out), "--samples", "0"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    first = subprocess.Popen(
        [*argv, "--steps", "10000000"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + START_WAIT_S
        pid_file = out / lock.LOCK_NAME
        while not (pid_file.exists() and pid_file.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "first never started"
            time.sleep(0.2)
        second = subprocess.run(
            [*argv, "--steps", "100"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=START_WAIT_S,
        )  # fmt: skip
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"another jaxninja process (pid {first.pid})" in lines[0]
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=EXIT_WAIT_S)
    assert first.returncode == 143
    code = subprocess.run(
        [*argv, "--steps", "100", "--overwrite"], cwd=ROOT, env=env, timeout=START_WAIT_S
    ).returncode
    assert code == 0  # the first's lock died with it
