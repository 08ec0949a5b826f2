"""``python -m jaxninja ARGS`` in a fresh process, on the CPU, from the repository root (tests
only): what the end-to-end tests of the derive command run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_command(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command's exit status and its output, as text."""
    return subprocess.run(
        [sys.executable, "-m", "jaxninja", *args],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
