"""The ``jaxninja`` command's first lines: a Ctrl-C or SIGTERM from here on is one line.

The console script and ``python -m jaxninja`` both start here. Importing this module installs a
handler that writes ``jaxninja: interrupted`` and exits 130 / 143 at once, before the command's
own modules are imported (``jaxninja._cli`` with argparse and threading takes ~0.1 s at load,
long enough for a Ctrl-C to land inside it as a traceback); ``jaxninja._cli.main`` then installs
the full policy (:mod:`jaxninja._cli.signals`) on its first line. ``_signal``, the C module under
``signal``, is used because importing ``signal`` itself takes long enough for a Ctrl-C to land
inside it. Nothing else imports this module: a library user's own Ctrl-C is left alone.
"""

import _signal
import os


def _early_exit(signum: int, frame: object) -> None:
    os.write(2, b"jaxninja: interrupted\n")
    os._exit(128 + signum)


for _sig in (_signal.SIGINT, _signal.SIGTERM):
    _signal.signal(_sig, _early_exit)


def console() -> None:
    """The ``jaxninja`` console script (:func:`jaxninja._cli.console`), its handler in place."""
    from jaxninja._cli import console as command

    command()
