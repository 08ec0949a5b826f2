"""``python -m jaxninja`` is the ``jaxninja`` command."""

import sys

from jaxninja._cli import main

sys.exit(main())
