"""One writer per run folder: an exclusive lock on the folder's ``.jaxninja.lock``.

The lock is ``fcntl.flock`` on a file that stays in the folder: the kernel releases it when the
holding process exits, however it exits (a crash, ``kill -9``, a lost machine), so a lock left
by a dead process is never mistaken for a live one (no pid file to go stale). The file holds the
holder's pid, only to name it in the refusal. Where ``fcntl`` does not exist (Windows) folders
are not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from jaxninja.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".jaxninja.lock"
MAX_PID_TEXT = 32  # the holder's pid, a line: read no more than this


def _holder(fd: int) -> str:
    """``(pid N)`` of the process holding the lock, as its file says, or ``""``."""
    try:
        text = os.pread(fd, MAX_PID_TEXT, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def acquire(folder: str | os.PathLike, flag: str = "--out") -> int | None:
    """Lock ``folder`` for this process; returns the lock's file descriptor (None: no locks here).

    A second writer is refused at once with a :class:`ConfigError` naming the folder and the
    holder's pid; the lock file is never followed through a symbolic link.
    """
    if fcntl is None:
        return None
    path = Path(folder) / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        raise ConfigError(f"{flag} {folder}: cannot lock it ({err.strerror or err})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ConfigError(
            f"{flag} {folder}: another jaxninja process{holder} is writing a run there; "
            f"wait for it to end or choose another {flag}"
        ) from None
    except OSError as err:  # a file system without locks: refuse rather than risk two writers
        os.close(fd)
        raise ConfigError(f"{flag} {folder}: cannot lock it ({err.strerror or err})") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid only names the holder in a refusal
    return fd


def release(fd: int | None) -> None:
    """Give the lock back (closing the descriptor releases it; the file stays)."""
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def locked(folder: str | os.PathLike, flag: str = "--out") -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block (:func:`acquire`, then :func:`release`)."""
    fd = acquire(folder, flag)
    try:
        yield
    finally:
        release(fd)
