"""One writer per run folder: an exclusive lock on the folder's ``.jaxninja.lock``.

The lock is ``fcntl.flock`` on that file: the kernel releases it when the holding process
exits, however it exits (a crash, ``kill -9``, a lost machine), so a lock left by a dead process
is never mistaken for a live one (no pid file to go stale). The file holds the holder's pid, only
to name it in the refusal. A clean release removes the file (while still holding the lock), so a
finished run leaves nothing; a writer that locked a file just removed sees that it is no longer
the folder's file and tries again. Where ``fcntl`` does not exist (Windows) folders are not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from jaxninja import checks
from jaxninja.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".jaxninja.lock"
MAX_PID_TEXT = 32  # the holder's pid, a line: read no more than this
TRIES = 8  # a lock file removed between our open and our lock: open it again (a race, rare)


class Lock(NamedTuple):
    """A held lock: its file's descriptor and path."""

    fd: int
    path: Path


def _holder(fd: int) -> str:
    """``(pid N)`` of the process holding the lock, as its file says, or ``""``."""
    try:
        text = os.pread(fd, MAX_PID_TEXT, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def acquire(folder: str | os.PathLike, flag: checks.Label = checks.OUT) -> Lock | None:
    """Lock ``folder`` for this process (None: no locks on this system).

    A second writer is refused at once with a :class:`ConfigError` naming the folder and the
    holder's pid; the lock file is never followed through a symbolic link.
    """
    if fcntl is None:
        return None
    path = Path(folder) / LOCK_NAME
    for _ in range(TRIES):
        fd = _open_locked(path, folder, flag)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it as we opened it: lock the folder's new file
    else:
        raise ConfigError(flag, f" {folder}: cannot lock it (its lock file keeps changing)")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid only names the holder in a refusal
    return Lock(fd, path)


def _open_locked(path: Path, folder: str | os.PathLike, flag: checks.Label) -> int:
    """Open ``path`` and take its lock, or refuse in one line."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        raise ConfigError(flag, f" {folder}: cannot lock it ({err.strerror or err})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ConfigError(
            flag,
            f" {folder}: another jaxninja process{holder} is writing a run there; "
            "wait for it to end or choose another ",
            flag,
        ) from None
    except OSError as err:  # a file system without locks: refuse rather than risk two writers
        os.close(fd)
        raise ConfigError(flag, f" {folder}: cannot lock it ({err.strerror or err})") from None
    return fd


def release(held: Lock | None) -> None:
    """Remove the lock file, then give the lock back (closing the descriptor releases it)."""
    if held is None:
        return
    try:
        os.unlink(held.path)
    except OSError:
        pass  # a stale file is harmless: the next writer locks it
    os.close(held.fd)


@contextlib.contextmanager
def locked(folder: str | os.PathLike, flag: checks.Label = checks.OUT) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block (:func:`acquire`, then :func:`release`)."""
    held = acquire(folder, flag)
    try:
        yield
    finally:
        release(held)
