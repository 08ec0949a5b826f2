"""A run folder holds one run, of one kind, written by one process (:mod:`jaxninja.io.runfolder`,
:mod:`jaxninja.io.lock`): the folder rules on made-up folders (no training), and the lock
between real processes. The same rules through ``jaxninja train`` / ``sample`` / ``evaluate``
are in ``tests/cli/test_run_folders.py``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxninja.errors import CheckpointError, ConfigError
from jaxninja.io import lock, runfolder
from jaxninja.io.atomic import write_atomic
from jaxninja.training import plan, rundir
from tests.helpers import ROOT, names_setting

LOCK_WAIT_S = 60  # a child process imports jaxninja and takes the lock (seconds, on a loaded box)


def test_names_are_the_ones_training_writes() -> None:
    """The io layer names the files without importing training: the names must agree."""
    assert runfolder.RUN_FILES == (
        rundir.CHECKPOINT_NAME,
        rundir.LOSSES_NAME,
        rundir.VAL_NAME,
        rundir.SUMMARY_NAME,
        rundir.PLOT_NAME,
    )
    assert runfolder.PLAN_NAME == plan.PLAN_NAME
    assert all(runfolder.RUN_DIR.fullmatch(plan.run_name(i, n)) for i, n in [(0, 2), (7, 1000)])


def single(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or runfolder.RUN_FILES:
        (folder / name).write_bytes(b"old " + name.encode())
    return folder


def many(folder: Path, k: int = 2) -> Path:
    names = [plan.run_name(i, k) for i in range(k)]
    for name in names:
        single(folder / name)
    runs = [{"name": n, "config": {}} for n in names]
    (folder / plan.PLAN_NAME).write_text(json.dumps({"version": 1, "runs": runs}))
    return folder


def claim(out: Path, resume: Path | None = None, overwrite: bool = False, runs=()):
    """:func:`runfolder.claim` as a writer makes it; close the returned scope to end the run."""
    scope = contextlib.ExitStack()
    try:
        runfolder.claim(out, resume, overwrite, scope, runs)
    except BaseException:
        scope.close()
        raise
    return scope


def test_scan_sorts_a_folder(tmp_path: Path) -> None:
    folder = many(single(tmp_path / "f"), 3)
    (folder / "notes.txt").write_text("mine")
    (folder / "run-xy").mkdir()
    (folder / lock.LOCK_NAME).write_text("1\n")
    (folder / ".losses.npy.123.abc.tmp").write_text("")
    c = runfolder.scan(folder)
    assert c.single == tuple(sorted(runfolder.RUN_FILES)) and c.plan
    assert c.run_dirs == ("run-00", "run-01", "run-02")
    assert c.foreign == ("notes.txt", "run-xy")
    text = runfolder.describe(c)
    assert "a run (checkpoint.npz)" in text and "run-00..run-02/" in text and "notes.txt" in text
    assert runfolder.scan(tmp_path / "missing").empty
    plain = many(tmp_path / "g")
    (plain / "summary.json").write_text("{}")  # a multi-run's own summary: not a stray file
    described = runfolder.describe(runfolder.scan(plain))
    assert described == "runs of --seeds/--sweep (runs.json, run-00..run-01/)"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda f: single(f), "already holds a run .*continue it with .* or replace it with"),
        (lambda f: many(f), r"already holds runs \(runs.json, run-00..run-01/\)"),
        (lambda f: single(f, "summary.json"), "summary.json of a run but no checkpoint.npz"),
        (lambda f: single(f, "loss.png", "losses.npy"), "loss.png, losses.npy of a run but no"),
        (lambda f: single(f, "words.txt"), r"files jaxninja did not write \(words.txt\)"),
        (lambda f: (f / "run-00").mkdir(parents=True), "already holds runs"),
    ],
)
@pytest.mark.parametrize("runs", [(), ("run-00", "run-01")], ids=["single", "many"])
def test_a_fresh_run_refuses_any_nonempty_folder(tmp_path: Path, make, match, runs) -> None:
    out = tmp_path / "out"
    make(out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(ConfigError) as info:
        claim(out, runs=runs)
    names_setting(info.value, f"^{{}} {re.escape(str(out))} .*{match}", "out", "--out")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the lock file too


def test_an_empty_or_missing_folder_is_taken(tmp_path: Path) -> None:
    claim(tmp_path / "new", runs=("run-00",)).close()
    assert (tmp_path / "new" / "run-00").is_dir()
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty").close()


def test_an_empty_out_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        runfolder.given("")
    names_setting(info.value, "^{} '': an empty path", "out", "--out")
    assert runfolder.given(".") == Path(".")


def write(path: Path, text: str = "new") -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def test_overwrite_keeps_the_old_run_until_the_new_one_is_saved(tmp_path: Path) -> None:
    """Many over single, then single over many: the old run stays whole until every new
    checkpoint is written, then everything of it the new run did not write is gone."""
    out = single(tmp_path / "out")
    (out / "mine.txt").write_text("kept")
    scope = claim(out, overwrite=True, runs=("run-00", "run-01"))
    write(out / plan.PLAN_NAME, json.dumps({"runs": [{"name": "run-00"}, {"name": "run-01"}]}))
    write(out / "run-00" / "checkpoint.npz")
    assert runfolder.scan(out).has_single  # one new checkpoint of two: the old run is whole
    write(out / "run-01" / "checkpoint.npz")
    assert runfolder.scan(out).single == () and (out / "mine.txt").read_text() == "kept"
    scope.close()
    assert runfolder.one_run(out, many=True) == out

    scope = claim(out, overwrite=True)
    write(out / "losses.npy")
    assert runfolder.scan(out).run_dirs == ("run-00", "run-01")
    write(out / "checkpoint.npz")
    contents = runfolder.scan(out)
    assert contents.single == ("checkpoint.npz", "losses.npy") and not contents.has_many
    assert contents.foreign == ("mine.txt",)
    scope.close()
    assert runfolder.one_run(out) == out / "checkpoint.npz"


def test_overwrite_of_fewer_runs_removes_the_others_and_their_stale_files(tmp_path: Path) -> None:
    out = many(tmp_path / "out", 3)
    (out / "run-02" / "yours.txt").write_text("kept")
    scope = claim(out, overwrite=True, runs=("run-00",))
    write(out / "run-00" / "losses.npy")
    write(out / "run-00" / "checkpoint.npz")
    scope.close()
    assert not (out / "run-01").exists() and not (out / plan.PLAN_NAME).exists()
    assert sorted(os.listdir(out / "run-02")) == ["yours.txt"]  # a stranger's file is kept
    assert sorted(os.listdir(out / "run-00")) == ["checkpoint.npz", "losses.npy"]


def test_an_interrupted_overwrite_leaves_the_old_run(tmp_path: Path) -> None:
    out = single(tmp_path / "out")
    scope = claim(out, overwrite=True, runs=("run-00",))
    write(out / plan.PLAN_NAME, "{}")
    scope.close()  # the new run stopped before its checkpoint
    write(out / "run-00" / "checkpoint.npz")  # no longer watched: nothing removed
    assert (out / "checkpoint.npz").read_bytes() == b"old checkpoint.npz"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda f: many(single(f)), "holds two runs, a run .*and runs of --seeds/--sweep"),
        (lambda f: many(f), r"not one run; name one of them, e.g. .*run-00"),
        (lambda f: single(f, "summary.json"), "without a checkpoint.npz .*summary.json"),
        (lambda f: f.mkdir(), r"without a checkpoint.npz \(it holds nothing\)"),
    ],
)
def test_a_reader_reads_only_a_folder_of_one_run(tmp_path: Path, make, match) -> None:
    folder = tmp_path / "f"
    make(folder)
    with pytest.raises(CheckpointError, match=match):
        runfolder.one_run(folder)


def test_a_multirun_reader_needs_the_whole_multirun(tmp_path: Path) -> None:
    folder = many(tmp_path / "f", 2)
    assert runfolder.one_run(folder, many=True) == folder
    (folder / "run-01" / "checkpoint.npz").unlink()
    with pytest.raises(CheckpointError, match="not a whole --seeds/--sweep run"):
        runfolder.one_run(folder, many=True)
    (folder / plan.PLAN_NAME).write_bytes(b"\x00" * 10)
    assert runfolder.plan_runs(folder) is None


def test_resuming_needs_the_folder_to_hold_that_one_run(tmp_path: Path) -> None:
    out = many(single(tmp_path / "out"))
    with pytest.raises(CheckpointError, match="holds two runs"):
        claim(out, resume=out / "checkpoint.npz")
    with pytest.raises(CheckpointError, match="holds two runs"):
        claim(out, resume=out, runs=("run-00", "run-01"))
    (out / "checkpoint.npz").unlink()
    claim(out, resume=out, runs=("run-00", "run-01")).close()


# ----------------------------------------------------------------------------------- the lock

HOLD = """
import sys, time
from jaxninja.io import lock
lock.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    """A real process holding ``folder``'s lock (it says so on stdout once it holds it)."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + LOCK_WAIT_S
    line = child.stdout.readline()  # blocks until the child holds the lock or dies
    assert line.strip() == "locked" and time.monotonic() < deadline, "child never locked"
    return child


def test_a_second_writer_is_refused_and_a_dead_holders_lock_is_free(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    child = hold_lock(out)
    try:
        with pytest.raises(ConfigError, match=rf"another jaxninja process \(pid {child.pid}\)"):
            claim(out)
        assert not (out / "run-00").exists()  # refused before anything was written
    finally:
        child.kill()  # SIGKILL: no clean-up runs, the kernel releases the lock
        child.wait(timeout=LOCK_WAIT_S)
    assert (out / lock.LOCK_NAME).exists()  # killed: its lock file stays, its lock does not
    scope = claim(out, runs=("run-00",))  # the stale file is no obstacle
    assert (out / lock.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    scope.close()
    assert (out / "run-00").is_dir() and not (out / lock.LOCK_NAME).exists()  # a clean end


def test_the_lock_is_released_on_close_and_not_followed_through_links(tmp_path: Path) -> None:
    held = lock.acquire(tmp_path)
    with pytest.raises(ConfigError, match=f"another jaxninja process .pid {os.getpid()}."):
        lock.acquire(tmp_path)  # a second open file description conflicts in one process too
    lock.release(held)
    assert not (tmp_path / lock.LOCK_NAME).exists()
    lock.release(lock.acquire(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    target = tmp_path / "victim"
    target.write_text("x")
    (other / lock.LOCK_NAME).symlink_to(target)
    with pytest.raises(ConfigError, match="cannot lock it"):
        lock.acquire(other)
    assert target.read_text() == "x"


def test_the_pid_in_a_lock_file_is_read_within_bounds(tmp_path: Path) -> None:
    (tmp_path / lock.LOCK_NAME).write_bytes(b"9" * 10**6)
    held = lock.acquire(tmp_path)  # not held: the garbage is replaced by this pid
    assert (tmp_path / lock.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    lock.release(held)
