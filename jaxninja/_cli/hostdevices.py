"""CPU devices for the runs' axis: XLA makes its host devices when jax starts, so the flag that
asks for several (``--xla_force_host_platform_device_count``) must be set before jax's import."""

from __future__ import annotations

import os
import sys

FLAG = "--xla_force_host_platform_device_count"


def cores() -> int:
    """The cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ensure_host_devices(count: int | None = None) -> int | None:
    """Ask XLA for ``count`` (default: :func:`cores`) CPU devices, one per core, so independent
    runs can go on in parallel. Returns the count asked for, or None when it is too late (jax is
    imported) or the user's own ``XLA_FLAGS`` already say how many."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or FLAG in flags:
        return None
    count = count or cores()
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count
