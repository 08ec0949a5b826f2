"""The command's entry point catches a Ctrl-C before it imports anything of its own: the console
script and ``python -m jaxninja`` start in :mod:`jaxninja._console`, whose import installs the
one-line exit, so a signal during the imports of ``jaxninja._cli`` is one line too."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from tests.helpers import ROOT

ENV = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )


def test_the_console_script_starts_in_the_module_that_installs_the_handler() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["jaxninja"] == "jaxninja._console:console"
    main = (ROOT / "jaxninja" / "__main__.py").read_text(encoding="utf-8")
    assert "from jaxninja._console import console" in main


def test_the_handler_is_in_place_before_the_command_modules_are_imported() -> None:
    done = python(
        "import signal, sys\n"
        "import jaxninja._console as c\n"
        "assert 'jaxninja._cli' not in sys.modules and 'argparse' not in sys.modules\n"
        "assert signal.getsignal(signal.SIGINT) is c._early_exit\n"
        "assert signal.getsignal(signal.SIGTERM) is c._early_exit\n"
    )
    assert done.returncode == 0, done.stderr


def test_a_ctrl_c_while_the_command_modules_import_is_one_line_and_130() -> None:
    """A signal after the entry point's first line, before the command's modules are imported
    (where a fixed delay from the process start cannot aim at a loaded machine)."""
    done = python(
        "import os, signal\n"
        "import jaxninja._console\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "import jaxninja._cli\n"
        "print('not interrupted')\n"
    )
    assert (done.returncode, done.stderr, done.stdout) == (130, "jaxninja: interrupted\n", "")
