"""Files written so that a crash leaves the old file or the new one, never half of either.

:func:`write_atomic` writes to a temporary file beside the target, flushes and fsyncs it,
renames it over the target with ``os.replace`` and fsyncs the folder. A temporary file left by a
killed write (``.<name>.<pid>.<random>.tmp``) is removed by the next write of that file.
:func:`prepare_out_dir` checks that an output folder is usable before any work.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from jaxninja import checks
from jaxninja.errors import CheckpointError, ConfigError

WRITE_WATCHERS: list[Callable[[Path], None]] = []
"""Called with each path :func:`write_atomic` has just written (a run folder being replaced
learns which of its files are new: :mod:`jaxninja.io.runfolder`)."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the directory entry (not possible on every OS)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    """Temporary files for ``path`` are ``.<name>.<random>.tmp`` beside it (``<random>`` starts
    with the writer's pid, so a live writer's file is never taken for a stale one)."""
    return f".{path.name}."


def _writer_alive(middle: str) -> bool:
    """Whether the process that named a temporary file ``<pid>.<random>`` is still running.

    Files without a pid (older jaxninja), this process's own (its writes are not concurrent)
    and those of a finished process count as stale. Only POSIX can ask safely (``os.kill`` with
    signal 0 checks existence there; on Windows it would terminate the process).
    """
    pid_text = middle.split(".", 1)[0]
    if os.name != "posix" or not pid_text.isdigit() or len(pid_text) > 10:
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed :func:`write_atomic` of ``path`` left beside it.

    Only regular files named ``.<name>.*.tmp`` in ``path``'s folder, whose writer is not
    running; anything else (directories, links, other names, unreadable folders) is left alone.
    Returns the files removed.
    """
    path = Path(path)
    prefix = _temp_prefix(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _writer_alive(name[len(prefix) : -len(".tmp")]):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def write_atomic(
    path: str | os.PathLike, write: Callable[[IO[bytes]], object], what: str = "file"
) -> None:
    """``write(f)`` into a temporary file beside ``path``, flush, fsync, rename over ``path``,
    fsync the folder: a crash leaves the old file or the new one, never half of either.

    On failure the temporary file is removed, a previous file at ``path`` is untouched, and the
    error is a :class:`CheckpointError` naming the file. The mode follows the umask. Temporary
    files of earlier, killed writes of ``path`` are removed first (:func:`remove_stale_temps`).
    """
    path = Path(path)
    folder = path.parent
    tmp_name = None
    remove_stale_temps(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=folder
        )
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; be a normal file
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot write {what} ({err.strerror or err})") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    _fsync_dir(folder)
    for watcher in list(WRITE_WATCHERS):
        watcher(path)


def save_figure(fig: Any, path: str | os.PathLike | IO[bytes], **savefig: Any) -> None:
    """``fig.savefig(path, format="png", **savefig)``, through :func:`write_atomic` when
    ``path`` is a path: a run killed while plotting leaves the old plot or the new one, never
    half a PNG (``path`` a file object: written as it is)."""
    if isinstance(path, (str, os.PathLike)):
        write_atomic(path, lambda f: fig.savefig(f, format="png", **savefig), "the plot")
    else:
        fig.savefig(path, format="png", **savefig)


def prepare_out_dir(out: str | os.PathLike, flag: checks.Label = checks.OUT) -> Path:
    """Check that ``out`` is (or can be made) a writable directory; create it if missing.

    Checked by writing and removing a probe file, which also works when running as root (where
    ``os.access`` says yes to everything). Raises :class:`ConfigError` naming the setting
    (``out=`` from Python, ``--out`` from the command line) and the path.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(flag, f" {out}: is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".jaxninja-probe."):
            pass
    except OSError as err:
        raise ConfigError(
            flag, f" {out}: not a writable directory ({err.strerror or err})"
        ) from None
    return out
