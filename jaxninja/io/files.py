"""Opening a file a stranger named: only a regular file is opened, and never in a way that can
block (a FIFO with no writer, a socket, a device). The word list (:mod:`jaxninja.data`) and every
``.npy``/``.npz`` reader (:mod:`jaxninja.io.safe_npz`) open files through here."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from jaxninja.errors import NotRegularFile

FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str | None:
    """What a ``st_mode`` is when it is not a regular file, else None."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in FILE_KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file; never blocks.

    ``stat`` first, so a socket or a FIFO is never opened; then ``O_NONBLOCK`` and ``fstat``
    of what was opened, so a FIFO swapped in between the two cannot hang the open either.
    Raises :class:`NotRegularFile` or the ``OSError`` / ``ValueError`` of the path.
    """
    kind = file_kind(os.stat(path).st_mode)
    if kind:
        raise NotRegularFile(kind)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind:
            raise NotRegularFile(kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
