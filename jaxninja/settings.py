"""Validate settings before any work starts: each bad value is a ConfigError naming flag and value.

The CLI calls :func:`validate_args` on its parsed flags; library code calls the single checks.
Limits come from the maths, not from taste: BatchNorm's Bessel-corrected variance divides by
``n - 1``, so a batch needs two examples; float64 needs ``jax_enable_x64``, which is switched on
here only when float64 is asked for and then verified, never at import time.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from jaxninja.errors import ConfigError

DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "gpu", "cuda", "rocm", "tpu")
AGAINST = ("jax", "torch")
SEED_LIMIT = 2**32  # jax.random.key(seed) wraps larger seeds without x64: 2**32 acts like 0


def check_int(flag: str, value: int, minimum: int, why: str = "") -> int:
    """``value`` is an integer >= ``minimum``; ``why`` explains the limit in the message."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        reason = f" ({why})" if why else ""
        raise ConfigError(f"{flag} must be an integer >= {minimum}, got {value!r}{reason}")
    return value


def check_batch_size(value: int, flag: str = "--batch-size") -> int:
    return check_int(flag, value, 2, "BatchNorm's Bessel-corrected variance divides by n - 1")


def check_block_size(value: int, flag: str = "--block-size") -> int:
    return check_int(flag, value, 1, "the model needs at least one character of context")


def check_width(value: int, flag: str) -> int:
    """A layer width (``--n-embd``, ``--n-hidden``)."""
    return check_int(flag, value, 1, "a layer needs at least one unit")


def check_steps(value: int, flag: str = "--steps") -> int:
    return check_int(flag, value, 0)


def check_seed(value: int, flag: str = "--seed") -> int:
    """0 <= seed < 2**32: larger or negative seeds would silently alias other seeds."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{flag} must be an integer in [0, 2**32), got {value!r}")
    return value


def check_positive_float(value: float, flag: str) -> float:
    """A finite number > 0 (a learning rate, a decay factor)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{flag} must be a finite number > 0, got {value!r}")
    return number


def check_learning_rate(value: float, flag: str = "--lr") -> float:
    return check_positive_float(value, flag)


def enable_x64() -> None:
    """Switch on float64 in jax and check that it took effect (it cannot on some backends)."""
    jax.config.update("jax_enable_x64", True)
    try:
        with warnings.catch_warnings():  # jax warns, then truncates, when x64 is off
            warnings.simplefilter("ignore", UserWarning)
            probe = jnp.ones((2,), dtype=jnp.float64) / 3
        ok = probe.dtype == jnp.float64 and float(probe[0]) == 1 / 3
    except Exception as err:  # a backend without float64 raises its own error types
        raise ConfigError(
            f"--dtype float64: this jax/backend cannot compute in float64 "
            f"({type(err).__name__}: {err})".splitlines()[0]
        ) from None
    if not ok:
        raise ConfigError(
            f"--dtype float64: jax_enable_x64 did not take effect (arrays come out "
            f"as {probe.dtype}); try JAX_ENABLE_X64=1"
        )


def resolve_dtype(name: str, flag: str = "--dtype") -> jnp.dtype:
    """The jax dtype called ``name``; float64 switches on x64 first."""
    if name not in DTYPES:
        raise ConfigError(f"unknown {flag} {name!r} (choose from {', '.join(DTYPES)})")
    if name == "float64":
        enable_x64()
    return jnp.dtype(name)


def resolve_device(name: str, flag: str = "--device") -> jax.Device:
    """The first jax device of platform ``name`` (``auto``: jax's default device)."""
    if name not in DEVICES:
        raise ConfigError(f"unknown {flag} {name!r} (choose from {', '.join(DEVICES)})")
    try:
        return jax.devices()[0] if name == "auto" else jax.devices(name)[0]
    except RuntimeError:
        present = sorted({d.platform for d in jax.devices()})
        raise ConfigError(
            f"{flag} {name}: no such device here (jax sees: {', '.join(present)})"
        ) from None


def torch_available() -> bool:
    """Whether ``import torch`` can work, without paying for the import."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked torch (sys.modules["torch"] = None)
        return False


def check_against(name: str, flag: str = "--against") -> str:
    """A reference to compare against; torch must be importable for ``torch``."""
    if name not in AGAINST:
        raise ConfigError(f"unknown {flag} {name!r} (choose from {', '.join(AGAINST)})")
    if name == "torch" and not torch_available():
        raise ConfigError(
            f"{flag} torch: torch is not installed "
            f"(pip install 'jaxninja[torch]', or use {flag} jax)"
        )
    return name


# attribute of the parsed flags -> (check, flag name). Attributes a subcommand lacks are skipped.
CHECKS: dict[str, tuple[Any, str]] = {
    "batch_size": (check_batch_size, "--batch-size"),
    "block_size": (check_block_size, "--block-size"),
    "n_embd": (check_width, "--n-embd"),
    "n_hidden": (check_width, "--n-hidden"),
    "steps": (check_steps, "--steps"),
    "seed": (check_seed, "--seed"),
    "lr": (check_learning_rate, "--lr"),
    "lr_decay_step": (check_steps, "--lr-decay-step"),
    "lr_decay": (check_positive_float, "--lr-decay"),
    "checkpoint_every": (check_steps, "--checkpoint-every"),
    "check_every": (check_steps, "--check-every"),
    "samples": (check_steps, "--samples"),
    "against": (check_against, "--against"),
}


def validate_args(args: argparse.Namespace) -> None:
    """Check every known setting present on ``args`` (None means "not given" and is skipped).

    A ``dtype`` of float64 switches on x64 here (and verifies it), so call this before creating
    any array; :func:`resolve_dtype` / :func:`resolve_device` return the objects themselves.
    """
    for attr, (check, flag) in CHECKS.items():
        value = getattr(args, attr, None)
        if value is not None:
            check(value, flag)
    dtype = getattr(args, "dtype", None)
    if dtype is not None:
        resolve_dtype(dtype)
    device = getattr(args, "device", None)
    if device is not None:
        resolve_device(device)
