"""A run folder holds one run, of one kind, written by one process.

Two kinds of run live in a folder: a **single run** (``checkpoint.npz``, ``losses.npy``,
``val_losses.npy``, ``summary.json``, ``loss.png``) and a **multi-run** of ``--seeds`` /
``--sweep`` (``runs.json``, one single-run folder ``run-NN/`` per run, and its own
``summary.json`` and ``loss.png``).
:func:`scan` sorts a folder's entries into those and the files jaxninja did not write.
Writers :func:`claim` a folder: its lock (:mod:`jaxninja.io.lock`) for as long as the run
lasts, then the rule that a folder holding anything is continued (``resume``) or replaced
(``overwrite``), never written into silently.
Replacing keeps the old run until the new one is complete: the old run's files that the new one
does not write over are removed only once every new checkpoint is written, so at every moment
one complete run is on disk. Readers (``sample``, ``evaluate``, ``--resume``) call
:func:`one_run`, which names what the folder holds when it is not exactly one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from jaxninja import checks
from jaxninja.errors import CheckpointError, ConfigError, Name
from jaxninja.io import atomic, lock
from jaxninja.io.files import NotRegularFile, open_regular

CHECKPOINT_NAME = "checkpoint.npz"
RUN_FILES = (CHECKPOINT_NAME, "losses.npy", "val_losses.npy", "summary.json", "loss.png")
"""What a single run writes (the names :mod:`jaxninja.training.rundir` uses)."""
PLAN_NAME = "runs.json"  # a multi-run's plan (:mod:`jaxninja.training.plan`)
RUN_DIR = re.compile(r"run-[0-9]{2,}")  # a multi-run's run folders: run-00, run-01, ...
MAX_PLAN_BYTES = 64 * 2**20  # a plan of 65,536 runs is about 30 MB
OVERWRITE = Name("overwrite", "--overwrite")
SHOWN = 3  # names listed in a message before "... N in all"


def _ours(name: str) -> bool:
    """Whether ``name`` is one of jaxninja's own working files (lock, probe, a temporary)."""
    if name == lock.LOCK_NAME or name.startswith(".jaxninja-probe."):
        return True
    return name.startswith(".") and name.endswith(".tmp")


class Contents(NamedTuple):
    """What a folder holds, by name (sorted)."""

    single: tuple[str, ...]  # single-run files present
    plan: bool  # runs.json present
    run_dirs: tuple[str, ...]  # run-NN folders
    foreign: tuple[str, ...]  # entries jaxninja did not write

    @property
    def has_single(self) -> bool:
        return CHECKPOINT_NAME in self.single

    @property
    def has_many(self) -> bool:
        return self.plan or bool(self.run_dirs)

    @property
    def empty(self) -> bool:
        return not (self.single or self.has_many or self.foreign)


def scan(folder: str | os.PathLike) -> Contents:
    """Sort ``folder``'s entries (a missing folder holds nothing). Links are not followed: a
    ``run-00`` that is not a folder, or a ``checkpoint.npz`` that is one, counts as foreign."""
    single, run_dirs, foreign, plan = [], [], [], False
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return Contents((), False, (), ())
    except OSError as err:
        raise ConfigError(f"{folder}: cannot list it ({err.strerror or err})") from None
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if _ours(name):
            continue
        if name in RUN_FILES and not is_dir:  # a FIFO or link: the reader's gate names it
            single.append(name)
        elif name == PLAN_NAME and not is_dir:
            plan = True
        elif RUN_DIR.fullmatch(name) and is_dir:
            run_dirs.append(name)
        else:
            foreign.append(name)
    return Contents(tuple(single), plan, tuple(run_dirs), tuple(foreign))


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown if len(names) <= SHOWN else f"{shown}, ... {len(names):,} in all"


def _runs_text(contents: Contents) -> str:
    dirs = contents.run_dirs
    parts = [PLAN_NAME] if contents.plan else []
    if dirs:
        parts.append(f"{dirs[0]}/" if len(dirs) == 1 else f"{dirs[0]}..{dirs[-1]}/")
    return ", ".join(parts)


def describe(contents: Contents) -> str:
    """What a folder holds, in words (for a refusal)."""
    parts = []
    if contents.has_single:
        parts.append(f"a run ({CHECKPOINT_NAME})")
    elif contents.single and not contents.has_many:  # a multi-run has its own summary, plot
        parts.append(f"{', '.join(contents.single)} of a run but no {CHECKPOINT_NAME}")
    if contents.has_many:
        parts.append(f"runs of --seeds/--sweep ({_runs_text(contents)})")
    if contents.foreign:
        parts.append(f"files jaxninja did not write ({_listed(contents.foreign)})")
    return " and ".join(parts) if parts else "nothing"


def plan_runs(folder: Path) -> list[str] | None:
    """The run folders ``folder``'s ``runs.json`` lists, or None if it cannot be read as a plan
    (read within :data:`MAX_PLAN_BYTES`, never blocking)."""
    try:
        with open_regular(folder / PLAN_NAME) as f:
            raw = f.read(MAX_PLAN_BYTES + 1)
        plan = json.loads(raw) if len(raw) <= MAX_PLAN_BYTES else None
    except (OSError, ValueError, NotRegularFile, RecursionError):
        return None
    runs = plan.get("runs") if isinstance(plan, dict) else None
    if not isinstance(runs, list) or not runs:
        return None
    names = [r.get("name") if isinstance(r, dict) else None for r in runs]
    if not all(isinstance(n, str) and RUN_DIR.fullmatch(n) for n in names):
        return None
    return names


def many_complete(folder: Path) -> bool:
    """Whether ``folder``'s multi-run is whole: its plan, and a checkpoint in each of its runs."""
    names = plan_runs(folder)
    return names is not None and all((folder / n / CHECKPOINT_NAME).is_file() for n in names)


# ----------------------------------------------------------------------------------- readers


def one_run(folder: str | os.PathLike, many: bool = False) -> Path:
    """The checkpoint of the one run ``folder`` holds (``many``: the folder itself, which must
    hold one whole multi-run); anything else is one line naming what it holds instead."""
    folder = Path(folder)
    contents = scan(folder)
    found = describe(contents)
    if contents.has_single and contents.has_many:
        raise CheckpointError(
            f"{folder}: holds two runs, {found}; a folder holds one run: train again into it "
            "with ", OVERWRITE, ", or move one of them away",
        )  # fmt: skip
    if many:
        if not many_complete(folder):
            raise CheckpointError(f"{folder}: holds {found}, not a whole --seeds/--sweep run")
        return folder
    if contents.has_single:
        return folder / CHECKPOINT_NAME
    if contents.has_many:
        first = contents.run_dirs[0] if contents.run_dirs else "run-00"
        raise CheckpointError(
            f"{folder}: holds {found}, not one run; name one of them, e.g. {folder / first}"
        )
    raise CheckpointError(
        f"{folder}: is a directory without a {CHECKPOINT_NAME} (it holds {found})"
    )


# ----------------------------------------------------------------------------------- writers


def _refusal(folder: Path, contents: Contents, flag: checks.Label) -> ConfigError | None:
    """Why a fresh run may not write into ``folder`` without ``--overwrite`` (None: it may)."""
    resume, overwrite = checks.RESUME, OVERWRITE
    if contents.has_single:
        return ConfigError(
            flag, f" {folder} already holds a run ({CHECKPOINT_NAME}); continue it with ", resume,
            f" {folder} or replace it with ", overwrite,
        )  # fmt: skip
    if contents.has_many:
        return ConfigError(
            flag, f" {folder} already holds runs ({_runs_text(contents)}); continue them with ",
            resume, f" {folder} or replace them with ", overwrite,
        )  # fmt: skip
    if contents.single:
        return ConfigError(
            flag, f" {folder} holds {', '.join(contents.single)} of a run but no "
            f"{CHECKPOINT_NAME}; replace them with ", overwrite, " or choose another ", flag,
        )  # fmt: skip
    if contents.foreign:
        return ConfigError(
            flag, f" {folder} holds files jaxninja did not write ({_listed(contents.foreign)}); "
            "choose a new or empty ", flag, ", or ", overwrite,
            " to write beside them (they are kept)",
        )  # fmt: skip
    return None


def _remove(path: Path, run_dir: bool) -> None:
    """Remove one of jaxninja's files, or a run folder's jaxninja files and then the folder if
    nothing else is left in it (a file someone else put there is never removed)."""
    with contextlib.suppress(OSError):
        if not run_dir:
            path.unlink()
            return
        for name in (*RUN_FILES, lock.LOCK_NAME):
            (path / name).unlink(missing_ok=True)
        for entry in os.scandir(path):
            if _ours(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        path.rmdir()


class Replacement:
    """An ``--overwrite`` in progress: the old run's files that the new run has not written over
    are removed once each of the new run's checkpoints (``expected``) is written."""

    def __init__(self, folder: Path, contents: Contents, runs: Sequence[str]) -> None:
        self.folder = folder
        self.written: set[str] = set()
        self.expected = {
            os.path.abspath(folder / r / CHECKPOINT_NAME if r else folder / CHECKPOINT_NAME)
            for r in (runs or [""])
        }
        old = [(folder / name, False) for name in contents.single]
        old += [(folder / PLAN_NAME, False)] if contents.plan else []
        for name in contents.run_dirs:
            if name in runs:  # the new run writes this folder again: its own files only
                old += [(folder / name / f, False) for f in RUN_FILES]
            else:
                old.append((folder / name, True))
        self.old = old

    def watch(self, path: Path) -> None:
        """A file was written (:data:`jaxninja.io.atomic.WRITE_WATCHERS`)."""
        self.written.add(os.path.abspath(path))
        if self.expected <= self.written:
            self.stop()
            for old, run_dir in self.old:
                if run_dir or os.path.abspath(old) not in self.written:
                    _remove(old, run_dir)

    def start(self) -> None:
        atomic.WRITE_WATCHERS.append(self.watch)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            atomic.WRITE_WATCHERS.remove(self.watch)


def given(out: str | os.PathLike, flag: Name = checks.OUT) -> Path:
    """``out`` as a path; an empty one is refused (``Path("")`` would be the current folder)."""
    checks.check_path(out, flag.keyword)
    if os.fspath(out) == "":
        raise ConfigError(flag, " '': an empty path; name a folder (the default is out)")
    return Path(out)


def _folder_of(resume: Path) -> Path:
    return resume.parent if resume.name == CHECKPOINT_NAME or resume.is_file() else resume


def claim(
    out: str | os.PathLike,
    resume: Path | None,
    overwrite: bool,
    scope: contextlib.ExitStack,
    runs: Sequence[str] = (),
    flag: checks.Label = checks.OUT,
) -> Path:
    """Make ``out`` this process's run folder for as long as ``scope`` is open, and return it.

    ``runs``: a multi-run's run folder names (created here); empty for a single run. The folder
    is created if missing and locked (a second writer is refused). Resuming the run ``out``
    holds needs it to hold that one run, of that kind. Otherwise a folder holding anything
    (a run of either kind, files of one, files jaxninja did not write) is refused unless
    ``overwrite``, which replaces every jaxninja file of the old run once the new run's
    checkpoints are written (files jaxninja did not write are kept).
    """
    out = atomic.prepare_out_dir(out, flag)
    scope.callback(lock.release, lock.acquire(out, flag))
    if resume is not None and resume.is_dir():
        one_run(resume, many=bool(runs))  # read only a folder holding that one run
    contents = scan(out)
    here = resume is not None and os.path.samefile(_folder_of(resume), out)
    if here:
        one_run(out, many=bool(runs))  # resuming: exactly that one run
    elif not contents.empty:
        if not overwrite:
            raise _refusal(out, contents, flag) or ConfigError(str(out))
        replacement = Replacement(out, contents, runs)
        replacement.start()
        scope.callback(replacement.stop)
    for name in runs:
        atomic.prepare_out_dir(out / name, flag)
    return out
