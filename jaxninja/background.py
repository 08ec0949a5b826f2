"""Two pieces of eager JAX work at once: one in a second thread, under the caller's jax settings.

Eagerly every jax operation compiles a program of its own the first time it meets a shape, and
XLA compiles without holding Python's GIL: two threads that each run eager operations overlap
their compiles on two cores. Each thread's results are what they would be alone (the programs
and their inputs are the same; only the order in which they are compiled changes).

jax keeps some settings per thread (``with jax.default_matmul_precision(...)``,
``jax.default_device``, ``jax.debug_nans``, ...): the second thread starts with the caller's.
jax has no public way to read them; where this jax version's private one is missing,
:func:`in_background` runs the function at once in the caller's thread instead (the same
result, only without the overlap).

:func:`importing` imports a module (torch) in a second thread the same way: an import is mostly
Python, and the block's eager work leaves the GIL to it while XLA compiles.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def local_settings() -> list[tuple[Any, Any]] | None:
    """This thread's jax settings that differ from the global ones, as ``(state, value)``
    pairs; None where this jax version does not let them be read."""
    try:
        from jax._src import config  # private: no public API lists the thread-local settings

        unset = config.config_ext.unset
        states = list(config.config_states.values())
        return [(s, s.get_local()) for s in states if s.get_local() is not unset]
    except (ImportError, AttributeError):
        return None


def with_settings(settings: list[tuple[Any, Any]], fn: Callable[[], T]) -> T:
    """``fn()`` with ``settings`` made this thread's, as jax's own context managers make them
    (without re-parsing the parsed values), and restored afterwards."""
    from jax._src import config

    previous = []
    try:
        for state, value in settings:
            previous.append((state, state.swap_local(value)))
            if state._update_thread_local_hook:
                state._update_thread_local_hook(value)
        return fn()
    finally:
        for state, value in reversed(previous):
            state.set_local(value)
            if state._update_thread_local_hook:
                unset = value is config.config_ext.unset
                state._update_thread_local_hook(None if unset else value)


@contextmanager
def in_background(fn: Callable[[], T], name: str = "jaxninja") -> Iterator[Future[T]]:
    """``with in_background(fn) as future:`` runs ``fn()`` in a second thread (with the
    caller's jax settings) while the block runs; ``future.result()`` is its value, or raises
    its exception. Leaving the block waits for ``fn`` to finish, also when the block raises."""
    settings = local_settings()
    if settings is None:  # cannot copy the settings: run it here, before the block
        future: Future[T] = Future()
        try:
            future.set_result(fn())
        except Exception as err:
            future.set_exception(err)
        yield future
        return
    with ThreadPoolExecutor(1, thread_name_prefix=name) as pool:
        yield pool.submit(with_settings, settings, fn)


@contextmanager
def importing(module: str | None) -> Iterator[None]:
    """Import ``module`` (None: nothing) in a second thread while the block runs: an import is
    mostly Python, but the block's eager jax work compiles outside the GIL. Leaving waits for
    the import. A failed import is not reported here: the module's own ``import`` statement
    tries again and says why."""
    if module is None or module in sys.modules:
        yield
        return
    thread = threading.Thread(target=_try_import, args=(module,), name=f"import-{module}")
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _try_import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception:  # the module's own import statement says why
        return


__all__ = ["importing", "in_background", "local_settings", "with_settings"]


class Later:
    """Work handed to one second thread, one piece after another, each under the jax settings
    of the caller at the time it was handed over; :meth:`results` waits for all handed so far.
    Where the settings cannot be copied each piece runs at once in the caller's thread."""

    def __init__(self, name: str = "jaxninja") -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.pending: list[tuple[Any, Future]] = []

    def submit(self, tag: Any, fn: Callable[[], T]) -> None:
        """Run ``fn()`` later; its result comes back with ``tag``."""
        settings = local_settings()
        future: Future = Future()
        if settings is None:
            try:
                future.set_result(fn())
            except Exception as err:
                future.set_exception(err)
        else:
            future = self.pool.submit(with_settings, settings, fn)
        self.pending.append((tag, future))

    def results(self) -> list[tuple[Any, Any]]:
        """``(tag, result or the exception raised)`` of every piece handed over since the last
        call, in order, once each has finished."""
        done = []
        for tag, future in self.pending:
            try:
                done.append((tag, future.result()))
            except Exception as err:
                done.append((tag, err))
        self.pending = []
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True)
