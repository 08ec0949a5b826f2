"""``python -m jaxninja`` is the ``jaxninja`` command.

A signal that arrives while the command's modules are still being imported already gets the
command's one line and status (``jaxninja._cli.main`` installs the full policy on its first
line). ``_signal``, the C module under ``signal``, is used because importing ``signal`` itself
takes long enough for a Ctrl-C to land inside it.
"""

import _signal
import os


def _early_exit(signum: int, frame: object) -> None:
    os.write(2, b"jaxninja: interrupted\n")
    os._exit(128 + signum)


for _sig in (_signal.SIGINT, _signal.SIGTERM):
    _signal.signal(_sig, _early_exit)

from jaxninja._cli import console  # noqa: E402

console()
