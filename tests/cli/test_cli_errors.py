"""Every bad input, through the real command line: one line on stderr, the right status, no mess.

Each case asserts: the exit status (2 for usage, data and settings; 1 for checkpoints and
runtime), exactly one line on stderr starting ``jaxninja: error:``, no "Traceback", the offending
name or value in that line, and that ``--out`` / the checkpoint directory is exactly as before
(a previous good checkpoint untouched, nothing new, no temporary files).

Speed: starting Python and importing jax costs seconds, so the default run puts all cases with
the same prelude through one child process that calls the ``python -m jaxninja`` entry point once
per case (stdout/stderr captured per case). ``-m slow`` also runs every case as its own
``python -m jaxninja`` process, which also catches output written below Python (C++ logs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from jaxninja.io import checkpoint as ck
from tests.helpers import ROOT

WORDS = [  # 40 short words over 'abcde': fast to load, train and evaluate
    "abc", "bead", "cab", "dace", "ebb", "ace", "bad", "dab", "eddc", "cede", "abed", "bee",
    "dead", "deed", "aec", "bbca", "cadd", "dcba", "eabd", "abba", "cade", "deb",
    "ecad", "bac", "cea", "dbe", "ead", "aab", "bcd", "cde", "dea", "eab", "acd", "bde", "cea",
    "dab", "eca", "ade", "bec",
]  # fmt: skip
OTHER_WORDS = [w.replace("e", "z") for w in WORDS]  # another vocabulary: 'z' instead of 'e'
SMALL = ["--n-embd", "2", "--n-hidden", "8", "--batch-size", "8", "--samples", "0"]

# Preludes run before the entry point, to simulate an environment (grouped per child process).
PRELUDES = {
    "": "",
    # torch not installed: find_spec("torch") is None and `import torch` fails, as when absent
    "no_torch": "import sys; sys.modules['torch'] = None",
    # a jax whose x64 switch does nothing (float64 arrays come out float32)
    "no_x64": (
        "import jax; _update = jax.config.update; "
        "jax.config.update = lambda k, v: None if k == 'jax_enable_x64' else _update(k, v)"
    ),
}
# Run many cases in one process: the same as `python -m jaxninja ARGS` (sys.exit(main())) for
# each, with stdout/stderr captured; an exception escaping main prints a traceback, as Python does.
DRIVER = """
import contextlib, io, json, os, sys, traceback
from jaxninja._cli import main
results = []
for case in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(case)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            rc = 1
    results.append({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
json.dump(results, sys.__stdout__)
"""


class Case(NamedTuple):
    """A bad command line. ``args`` may hold {tmp} (the case's folder) and {good} (a copy of a
    good run's directory); ``setup(tmp)`` makes the bad files; ``expect`` must all appear."""

    id: str
    args: list[str]
    status: int
    expect: list[str]
    setup: Callable[[Path], None] | None = None
    prelude: str = ""
    skip: str = ""  # a reason to skip this case here


def words_file(name: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        (tmp / name).write_bytes(data)

    return setup


def corrupt_checkpoint(how: str) -> Callable[[Path], None]:
    """Turn the good checkpoint in {tmp}/good into a bad one."""

    def setup(tmp: Path) -> None:
        path = tmp / "good" / ck.CHECKPOINT_NAME
        data = path.read_bytes()
        arrays = dict(np.load(path, allow_pickle=False))
        if how == "text":
            path.write_text("emma\nolivia\n")
        elif how == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "empty":
            path.write_bytes(b"")
        elif how in ("newer", "pickled", "modified"):
            if how == "newer":
                arrays["format_version"] = np.array(ck.FORMAT_VERSION + 1, dtype=np.int64)
            elif how == "pickled":
                arrays["config_json"] = np.array([{"a": 1}], dtype=object)
            else:
                arrays["params.W1"] = arrays["params.W1"] + 1
            with open(path, "wb") as f:
                np.savez(f, **arrays)

    return setup


def chain(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)

    return setup


def make_dir(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir()


GOOD_DATA = words_file("words.txt", "\n".join(WORDS) + "\n")
OTHER_DATA = words_file("other.txt", "\n".join(OTHER_WORDS) + "\n")
SAME_VOCAB = words_file("same.txt", "\n".join(WORDS[::-1][:-1]) + "\n")  # other words, same chars
IS_ROOT = os.name == "posix" and os.geteuid() == 0
TRAIN = ["train", "--steps", "3", *SMALL, "--out", "{good}"]  # --out holds a good checkpoint


CHECK = ["check", "--data", "{tmp}/words.txt", "--against", "jax", "--n-hidden", "8"]


def unreadable(tmp: Path) -> None:
    GOOD_DATA(tmp)
    (tmp / "words.txt").chmod(0)


CASES = [
    # --- data -------------------------------------------------------------------------------
    Case("data-missing", [*TRAIN, "--data", "{tmp}/missing.txt"], 2, ["missing.txt", "no such"]),
    Case("data-directory", [*TRAIN, "--data", "{tmp}/dir"], 2, ["dir", "is a directory"],
         make_dir("dir")),
    Case("data-unreadable", [*TRAIN, "--data", "{tmp}/words.txt"], 2,
         ["words.txt", "Permission denied"], unreadable,
         skip="root reads chmod 000 files" if IS_ROOT else ""),
    Case("data-not-a-directory", [*TRAIN, "--data", "{tmp}/words.txt/x"], 2,
         ["words.txt/x", "Not a directory"], GOOD_DATA),
    Case("data-not-utf8", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt:2:", "not UTF-8", "0xff"],
         words_file("w.txt", b"abc\nab\xffc\n")),
    Case("data-empty", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt", "no words"],
         words_file("w.txt", "")),
    Case("data-blank-lines", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt", "no words"],
         words_file("w.txt", "\n  \n\t\n")),
    Case("data-boundary-char", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt:2:3:", "'.'"],
         words_file("w.txt", "abc\nab.c\n")),
    Case("data-white-space", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt:1:4:", "white space"],
         words_file("w.txt", "abc de\n")),
    Case("data-too-few-words", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt", "1 word(s)"],
         words_file("w.txt", "abcde\n")),
    Case("data-one-character", [*TRAIN, "--data", "{tmp}/w.txt"], 2, ["w.txt", "vocabulary has 1"],
         words_file("w.txt", "a\naa\naaa\n" * 4)),
    # --- settings ---------------------------------------------------------------------------
    *(
        Case(f"train{flag}={value}", [*TRAIN, "--data", "{tmp}/words.txt", flag, value], 2,
             [flag, value], GOOD_DATA)
        for flag, value in [
            ("--batch-size", "1"), ("--batch-size", "0"), ("--block-size", "0"),
            ("--n-embd", "0"), ("--n-hidden", "-1"), ("--steps", "-1"), ("--lr", "0.0"),
            ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"), ("--dtype", "float16"),
            ("--device", "abacus"), ("--device", "tpu"), ("--seed", "-1"),
            ("--lr-decay", "0.0"), ("--checkpoint-every", "-5"),
        ]
    ),
    Case("train-float64-without-x64", [*TRAIN, "--data", "{tmp}/words.txt", "--dtype", "float64"],
         2, ["float64", "x64"], GOOD_DATA, prelude="no_x64"),
    Case("check-against-torch-without-torch", ["check", "--against", "torch"], 2,
         ["--against", "torch", "not installed"], prelude="no_torch"),
    *(
        Case(f"check{flag}={value}", [*CHECK, flag, value], 2, [flag, value], GOOD_DATA)
        for flag, value in [("--batch-size", "1"), ("--n-hidden", "0"), ("--dtype", "float16"),
                            ("--against", "tf"), ("--seed", "-1")]
    ),
    Case("check-data-missing", ["check", "--data", "{tmp}/missing.txt"], 2, ["missing.txt"]),
    Case("check-float64-without-x64", [*CHECK, "--dtype", "float64"], 2, ["float64", "x64"],
         GOOD_DATA, prelude="no_x64"),
    # check refuses an unusable --plot folder before it computes anything
    Case("check-plot-is-a-file", [*CHECK, "--plot", "{tmp}/file"], 2, ["--plot", "file"],
         chain(GOOD_DATA, words_file("file", "keep me"))),
    Case("check-plot-not-writable", [*CHECK, "--plot", "/proc/x"], 2, ["--plot", "/proc/x"],
         GOOD_DATA, skip="" if sys.platform.startswith("linux") else "uses /proc"),
    Case("usage-not-a-number", [*TRAIN, "--steps", "many"], 2, ["--steps", "many"]),
    Case("usage-unknown-subcommand", ["trian"], 2, ["trian"]),
    Case("sample-num-0", ["sample", "--checkpoint", "{good}", "--num", "0"], 2, ["--num", "0"]),
    # --- --out ------------------------------------------------------------------------------
    Case("out-is-a-file", [*TRAIN[:-1], "{tmp}/file", "--data", "{tmp}/words.txt"], 2,
         ["--out", "file", "is a file"], chain(GOOD_DATA, words_file("file", "keep me"))),
    Case("out-not-writable", [*TRAIN[:-1], "/proc", "--data", "{tmp}/words.txt"], 2,
         ["--out", "/proc", "not a writable directory"], GOOD_DATA,
         skip="" if sys.platform.startswith("linux") else "uses /proc"),
    # --- checkpoints ------------------------------------------------------------------------
    Case("resume-missing", ["train", "--resume", "{tmp}/nope"], 1, ["nope", "no such checkpoint"]),
    Case("resume-directory-without-checkpoint", ["train", "--resume", "{tmp}/dir"], 1,
         ["dir: is a directory without a checkpoint.npz"], make_dir("dir")),
    *(
        Case(f"{sub}-{how}-checkpoint", [sub, flag, "{good}"], 1, [ck.CHECKPOINT_NAME, words],
             corrupt_checkpoint(how))
        for sub, flag in [("train", "--resume"), ("sample", "--checkpoint"),
                          ("evaluate", "--checkpoint")]
        for how, words in [
            ("text", "not a jaxninja checkpoint"), ("empty", "empty file"),
            ("truncated", "truncated or corrupt"),
            ("newer", f"format version {ck.FORMAT_VERSION + 1} is newer"),
            ("pickled", "pickled object array"), ("modified", "checksum mismatch"),
        ]
    ),
    Case("sample-missing-checkpoint", ["sample", "--checkpoint", "{tmp}/nope.npz"], 1,
         ["nope.npz", "no such checkpoint"]),
    Case("evaluate-default-folder-empty", ["evaluate"], 1, ["out", "no such checkpoint"]),
    Case("resume-other-vocabulary", ["train", "--resume", "{good}", "--data", "{tmp}/other.txt"],
         1, ["vocabulary", "other.txt"], OTHER_DATA),
    Case("resume-other-n-hidden", ["train", "--resume", "{good}", "--n-hidden", "9"], 2,
         ["--n-hidden", "9"]),
    Case("resume-other-words", ["train", "--resume", "{good}", "--data", "{tmp}/same.txt"], 1,
         ["trained on other data", "--allow-other-data"], SAME_VOCAB),
    Case("train-too-wide", [*TRAIN, "--n-hidden", "100000000", "--data", "{tmp}/words.txt"], 2,
         ["needs about", "GiB of memory"], GOOD_DATA),
    Case("train-too-many-samples", [*TRAIN, "--samples", "100000000000"], 2,
         ["needs about", "--samples 100,000,000,000"]),
    Case("train-max-data-bytes-0", [*TRAIN, "--max-data-bytes", "0"], 2, ["--max-data-bytes"]),
    Case("train-data-over-max-bytes", [*TRAIN, "--data", "{tmp}/words.txt", "--max-data-bytes",
                                       "10"], 2, ["words.txt", "--max-data-bytes"], GOOD_DATA),
    # --- runtime ----------------------------------------------------------------------------
    Case("train-non-finite", [*TRAIN, "--data", "{tmp}/words.txt", "--lr", "1e30", "--overwrite"],
         1, ["loss is nan", "step", "1e+30"], GOOD_DATA),
    Case("train-out-holds-a-run", [*TRAIN, "--data", "{tmp}/words.txt"], 2,
         ["already holds a run", "--resume", "--overwrite"], GOOD_DATA),
    Case("evaluate-other-vocabulary", ["evaluate", "--checkpoint", "{good}", "--data",
                                       "{tmp}/other.txt"], 2, ["vocabulary", "other.txt"],
         OTHER_DATA),
]  # fmt: skip


# ------------------------------------------------------------------------------ running


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("JAXNINJA_NAMES", None)
    return env


def child(
    prelude: str, tmp: Path, argv: list[str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A fresh Python running ``prelude``, then the driver (``argv`` None) or the entry point."""
    tail = (
        DRIVER
        if argv is None
        else "import runpy; runpy.run_module('jaxninja', run_name='__main__')"
    )
    code = "\n".join(filter(None, [PRELUDES[prelude], tail]))
    cmd = [sys.executable, "-c", code, *(argv or [])]
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, cwd=tmp, env=child_env(tmp), timeout=300
    )


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, small, finished training run (checkpoint, losses, summary, plot) to spoil."""
    tmp = tmp_path_factory.mktemp("good")
    GOOD_DATA(tmp)
    argv = [  # 0 steps: a complete run (calibrated, evaluated) without compiling the SGD loop
        "train",
        "--steps",
        "0",
        *SMALL,
        "--data",
        str(tmp / "words.txt"),
        "--out",
        str(tmp / "run"),
    ]
    result = child("", tmp, argv)
    assert result.returncode == 0, result.stderr
    return tmp / "run"


def prepare(case: Case, root: Path, good_run: Path) -> tuple[Path, list[str]]:
    """The case's folder (with a copy of the good run in good/) and its resolved argv."""
    tmp = root / case.id.replace("/", "_")
    tmp.mkdir()
    shutil.copytree(good_run, tmp / "good")
    if case.setup:
        case.setup(tmp)
    argv = [a.replace("{tmp}", str(tmp)).replace("{good}", str(tmp / "good")) for a in case.args]
    return tmp, argv


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file and folder under ``folder`` (names relative to it) and each file's bytes."""

    def content(p: Path) -> bytes:
        if p.is_dir():
            return b"<folder>"
        try:
            return p.read_bytes()
        except PermissionError:  # the unreadable word list
            return b"<unreadable>"

    return {str(p.relative_to(folder)): content(p) for p in sorted(folder.rglob("*"))}


def runnable(case: Case) -> bool:
    return not case.skip


@pytest.fixture(scope="module")
def grouped_results(good_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run every runnable case, one child process per prelude: id -> (tmp, before, result)."""
    root = tmp_path_factory.mktemp("cases")
    results = {}
    for prelude in PRELUDES:
        cases = [c for c in CASES if c.prelude == prelude and runnable(c)]
        if not cases:
            continue
        prepared = [prepare(c, root, good_run) for c in cases]
        befores = [snapshot(tmp) for tmp, _ in prepared]
        proc = child(prelude, root, stdin=json.dumps([argv for _, argv in prepared]))
        assert proc.returncode == 0 and proc.stdout, proc.stderr[-3000:]
        for case, (tmp, _), before, res in zip(
            cases, prepared, befores, json.loads(proc.stdout), strict=True
        ):
            results[case.id] = (tmp, before, res)
    return results


def check_result(
    case: Case, tmp: Path, before: dict[str, bytes], rc: int, stdout: str, stderr: str
) -> None:
    """The assertions every bad input must pass."""
    shown = f"{case.id}: status {rc}, stderr {stderr!r}"
    assert "Traceback" not in stderr + stdout, shown
    lines = stderr.splitlines()
    assert len(lines) == 1, shown
    line = lines[0]
    assert line.startswith("jaxninja: error: "), shown
    assert rc == case.status, shown
    for fragment in case.expect:
        assert fragment in line, f"{fragment!r} missing: {shown}"
    if case.status == 2 and not case.id.startswith("usage"):
        assert "unrecognized arguments" not in line and "invalid choice" not in line, shown
    after = snapshot(tmp)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{case.id}: files created, changed or removed: {changed}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, grouped_results: dict) -> None:
    if case.skip:
        pytest.skip(case.skip)
    tmp, before, res = grouped_results[case.id]
    check_result(case, tmp, before, res["rc"], res["stdout"], res["stderr"])


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_own_process(case: Case, good_run: Path, tmp_path: Path) -> None:
    """The same case as its own ``python -m jaxninja`` process: nothing below Python leaks."""
    if case.skip:
        pytest.skip(case.skip)
    tmp, argv = prepare(case, tmp_path, good_run)
    before = snapshot(tmp)
    proc = child(case.prelude, tmp, argv)
    check_result(case, tmp, before, proc.returncode, proc.stdout, proc.stderr)


def test_closed_pipe_is_quiet(good_run: Path, tmp_path: Path) -> None:
    """`jaxninja sample ... | head -1` must not print a traceback when head closes the pipe."""
    code = "import runpy; runpy.run_module('jaxninja', run_name='__main__')"
    argv = ["sample", "--checkpoint", str(good_run), "--num", "2000"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=child_env(tmp_path),
    )
    proc.stdout.close()  # the reader is gone before the first name is written
    stderr = proc.stderr.read()
    proc.wait(timeout=300)
    assert "Traceback" not in stderr and len(stderr.splitlines()) <= 1, stderr


def entry_point(tmp: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The ``python -m jaxninja`` entry point (the console script's path, fast exit included)
    in a fresh process in ``tmp``, its output through pipes."""
    code = "import runpy; runpy.run_module('jaxninja', run_name='__main__')"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=child_env(tmp),
        timeout=300,
    )


def test_a_fast_exit_keeps_the_output_and_the_status(tmp_path: Path) -> None:
    """``check``/``derive``/``sample``/``evaluate`` end with os._exit once main returns (no
    interpreter teardown): everything printed still arrives through a pipe, and a failing
    command's status is kept (derive of a refuted layer: 1)."""
    result = entry_point(tmp_path, "derive", "--layer", str(ROOT / "examples" / "linear_wrong.py"))
    assert result.returncode == 1, result.stderr
    *_, total, verdict = result.stdout.rstrip().splitlines()  # the verdict line is the last
    assert total.startswith("total, imports included:")
    assert verdict.startswith("REFUTED: dx, db (2 of 3)") and verdict.endswith("(exit 1)")


def test_train_exits_fast_with_every_file_complete(tmp_path: Path) -> None:
    """``train`` ends with os._exit too (its files are closed and its threads joined before main
    returns): what it printed arrives through a pipe, and the checkpoint, losses, summary and
    plot it wrote are whole (the checkpoint's checksum holds, the PNG ends with its IEND chunk)."""
    GOOD_DATA(tmp_path)
    flags = [*SMALL[:-2], "--samples", "3", "--steps", "1000", "--out", "run"]
    result = entry_point(tmp_path, "train", "--data", "words.txt", *flags)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip().splitlines()
    assert lines[-1].startswith("wrote ") and len(lines) == 6, lines  # start, result, 3 names
    run = tmp_path / "run"
    assert ck.load_checkpoint(run).step == 1000
    assert np.load(run / "losses.npy").shape == (1000,)
    assert len(json.loads((run / "summary.json").read_text())["samples"]) == 3
    png = (run / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[-8:-4] == b"IEND"
