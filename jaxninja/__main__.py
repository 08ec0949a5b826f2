"""``python -m jaxninja`` is the ``jaxninja`` command."""

import sys

from jaxninja.cli import main

sys.exit(main())
