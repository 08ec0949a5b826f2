"""``python -m jaxninja`` is the ``jaxninja`` command.

A signal that arrives while the command's modules are still being imported already gets the
command's one line and status: importing :mod:`jaxninja._console` installs that handler first
(``jaxninja._cli.main`` installs the full policy on its first line).
"""

from jaxninja._console import console

console()
