"""jaxninja.background: the second thread runs under the caller's thread-local jax settings, its
exception reaches the caller, and without readable settings the work runs in the caller's
thread; a background import is done when the block is left, and a failed one is left to the
module's own import."""

from __future__ import annotations

import sys
import threading

import jax
import pytest

from jaxninja import background


def _precision_and_thread() -> tuple[object, int]:
    return jax.config.jax_default_matmul_precision, threading.get_ident()


def test_second_thread_has_the_callers_thread_local_settings():
    assert jax.config.jax_default_matmul_precision is None  # the global default: not set here
    with jax.default_matmul_precision("highest"):
        with background.in_background(_precision_and_thread) as future:
            pass
        precision, thread = future.result()
    assert precision == "highest" and thread != threading.get_ident()


def test_settings_do_not_leak_out_of_the_second_thread():
    with background.in_background(_precision_and_thread) as future:
        pass
    assert future.result()[0] is None and background.local_settings() == []


def test_an_exception_in_the_second_thread_reaches_the_caller():
    def fails() -> None:
        raise ZeroDivisionError("division by zero")

    with background.in_background(fails) as future:
        pass
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        future.result()


def test_leaving_the_block_waits_for_the_second_thread_also_on_an_error():
    release, done = threading.Event(), []

    def slow() -> None:
        release.wait(5)
        done.append(True)

    with pytest.raises(KeyError):
        with background.in_background(slow):
            release.set()
            raise KeyError("in the block")
    assert done == [True]


def test_without_readable_settings_it_runs_in_the_callers_thread(monkeypatch):
    monkeypatch.setattr(background, "local_settings", lambda: None)
    with jax.default_matmul_precision("highest"):
        with background.in_background(_precision_and_thread) as future:
            assert future.done()  # ran before the block
    assert future.result() == ("highest", threading.get_ident())


def test_importing_has_imported_when_the_block_is_left(tmp_path, monkeypatch):
    (tmp_path / "jn_slow_module.py").write_text("import time\ntime.sleep(0.2)\nVALUE = 1\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delitem(sys.modules, "jn_slow_module", raising=False)  # removed afterwards
    with background.importing("jn_slow_module"):
        pass
    assert sys.modules["jn_slow_module"].VALUE == 1


def test_a_failed_background_import_is_left_to_the_modules_own_import(tmp_path, monkeypatch):
    (tmp_path / "jn_broken_module.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.syspath_prepend(tmp_path)
    with background.importing("jn_broken_module"):
        pass
    assert "jn_broken_module" not in sys.modules
    with pytest.raises(ImportError, match="broken on purpose"):
        __import__("jn_broken_module")
