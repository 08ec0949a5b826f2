"""Ctrl-C and SIGTERM for the command line: always one line and 130 / 143, never a lost signal.

The handler is installed at the entry point's first line, before jax is imported, and never
raises into the code it interrupts (JAX runs Python callbacks in which a ``KeyboardInterrupt``
would be lost). What a signal does depends on the phase the command is in:

- ``exit`` (imports, loading, compiling, finishing after the checkpoint is safe, sampling):
  write the one line and leave at once with ``os._exit``; files are written atomically, so an
  exit at any moment leaves each one old or new, never half of it.
- ``stop`` (the training loop): remember the signal; the loop saves at the next chunk boundary
  and the command exits with the signal's status. A second signal leaves at once, without saving
  (the last checkpoint, if any, is kept).

Python runs a signal's handler only when the main thread is back in Python code, and a signal
that arrives again before then is merged into the first: during a chunk (the main thread waits
in XLA for seconds) a second Ctrl-C would be lost. So the policy runs on a watcher thread that
reads :func:`signal.set_wakeup_fd`'s pipe, where the C-level handler writes one byte for every
signal delivered, at once (the main thread's wait releases the GIL); the Python-level handler
does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells do


class Interrupts:
    """The process's signal policy; :func:`installed` makes one for the length of a command."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.phase = "exit"
        self.message = "interrupted"

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.phase == "stop" and not self.caught:
            self.caught.append(signum)
            return
        message = self.message
        if self.phase == "stop":
            message = (
                "interrupted twice; stopped without saving (the last checkpoint, if any, is kept)"
            )
        leave(message, EXIT_STATUS.get(self.caught[0] if self.caught else signum, 130))

    def exit_phase(self, message: str = "interrupted") -> None:
        """From now on a signal leaves at once with ``message``."""
        self.phase, self.message = "exit", message

    def stop_phase(self) -> None:
        """From now on the first signal is a request to stop at the next chunk boundary."""
        self.phase = "stop"

    def should_stop(self) -> int:
        """The first signal caught (truthy: stop at this chunk boundary), else 0."""
        return self.caught[0] if self.caught else 0

    @property
    def status(self) -> int:
        return EXIT_STATUS[self.caught[0]] if self.caught else 0


def leave(message: str, status: int) -> None:
    """One line on stderr, then exit now (no cleanup that could block or raise)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.write(f"jaxninja: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the watcher thread acts on the signal (see the module doc)."""


def _watch(read_fd: int, policy: Interrupts) -> None:
    """Act on every signal byte the C-level handler writes, until the pipe is closed."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:  # a command that put in its own handler (launch) is left to it
            if signum in EXIT_STATUS and signal.getsignal(signum) is _ignore:
                policy.handle(signum, None)


@contextmanager
def installed() -> Iterator[Interrupts]:
    """Install the policy for SIGINT and SIGTERM, acted on by a watcher thread; put the previous
    handlers and wakeup fd back afterwards (the tests call the entry point many times in one
    process). Off the main thread: no handlers."""
    policy = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield policy
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block
    watcher = threading.Thread(target=_watch, args=(read_fd, policy), daemon=True)
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _ignore) for sig in EXIT_STATUS}
    try:
        yield policy
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        watcher.join(timeout=1)
        os.close(read_fd)
