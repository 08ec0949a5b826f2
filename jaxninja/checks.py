"""The single checks behind every setting: each bad value is a ConfigError naming setting and value.

:mod:`jaxninja.config` applies them to every field of a configuration (from the CLI, the Python
API or a checkpoint). Limits come from the maths, not from taste: BatchNorm's Bessel-corrected
variance divides by ``n - 1``, so a batch needs two examples; float64 needs ``jax_enable_x64``,
which :func:`dtype_scope` switches on only for a call that asks for float64, verified, and
restores afterwards; never at import time. jax is imported only by the functions that need a
device or a dtype, so flags can be checked before jax starts.

Each check names its setting by an :class:`~jaxninja.errors.Name` (its Python keyword and its
command-line flag; the defaults below are the settings' own), so the one error reads
``samples= must be ...`` from Python and ``--samples must be ...`` from the command line. A plain
string (a flag only the command line has) is shown as it is.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from jaxninja.errors import ArgumentError, ConfigError, Name

if TYPE_CHECKING:
    import jax

DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "gpu", "cuda", "rocm", "tpu")
AGAINST = ("jax", "torch", "fd")  # fd: finite differences in float64
SEED_LIMIT = 2**32  # jax.random.key(seed) wraps larger seeds without x64: 2**32 acts like 0


Label = str | Name
"""How a check names its setting: both spellings (a :class:`Name`), or one flag (``str``)."""

BATCH_SIZE = Name("batch_size", "--batch-size")
BLOCK_SIZE = Name("block_size", "--block-size")
STEPS = Name("steps", "--steps")
SEED = Name("seed", "--seed")
LR = Name("lr", "--lr")
LR_DECAY = Name("lr_decay", "--lr-decay")
LR_TIMES_DECAY = Name("lr * lr_decay", "--lr x --lr-decay")
MAX_DATA_BYTES = Name("max_data_bytes", "--max-data-bytes")
N_DEVICES = Name("devices", "--devices")
DTYPE = Name("dtype", "--dtype")
DEVICE = Name("device", "--device")
AGAINST_NAME = Name("against", "--against")
# options of a run and of its use (run_training / run_many / train / sample / evaluate keywords)
SAMPLES = Name("samples", "--samples")
CHECK_EVERY = Name("check_every", "--check-every")
CHECKPOINT_EVERY = Name("checkpoint_every", "--checkpoint-every")
VAL_EVERY = Name("val_every", "--val-every")
CHUNK_STEPS = Name("chunk_steps", "chunk_steps")  # Python only: the CLI's chunk is fixed
NUM = Name("num", "--num")
OUT = Name("out", "--out")
RESUME = Name("resume", "--resume")
DATA = Name("data", "--data")
SEEDS = Name("seeds", "--seeds")
SWEEPS = Name("sweeps", "--sweep")
MODEL = Name("model", "--model")
ALLOW_MODEL_CHANGE = Name("allow_model_change", "--allow-model-change")
ALLOW_OTHER_DATA = Name("allow_other_data", "--allow-other-data")


def check_int(flag: Label, value: int, minimum: int, why: str = "") -> int:
    """``value`` is an integer >= ``minimum``; ``why`` explains the limit in the message."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        reason = f" ({why})" if why else ""
        raise ConfigError(flag, f" must be an integer >= {minimum}, got {value!r}{reason}")
    return value


def check_path(value: object, keyword: str) -> None:
    """``value`` is a path (``str`` or ``os.PathLike``): what the Python API's ``keyword=``
    takes. (The command line always gives text.)"""
    if not isinstance(value, str | os.PathLike):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ArgumentError(
            f"{keyword}= must be a path (str or os.PathLike), got {type(value).__name__} {shown}"
        )


def check_keywords(given: Iterable[str], allowed: Iterable[str], caller: str, hint: str) -> None:
    """Every keyword in ``given`` is one ``caller`` takes; else one line naming it and ``hint``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        names = ", ".join(f"{name}=" for name in unknown)
        raise ArgumentError(f"{caller}() takes no {names} ({hint})")


def check_type(value: object, kinds: type | tuple[type, ...], keyword: str, what: str) -> None:
    """``value`` is one of ``kinds`` (None allowed when it is among them), else one line naming
    the keyword and ``what`` it takes."""
    if not isinstance(value, kinds):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ArgumentError(f"{keyword}= must be {what}, got {type(value).__name__} {shown}")


def check_batch_size(value: int, flag: Label = BATCH_SIZE) -> int:
    return check_int(flag, value, 2, "BatchNorm's Bessel-corrected variance divides by n - 1")


def check_block_size(value: int, flag: Label = BLOCK_SIZE) -> int:
    return check_int(flag, value, 1, "the model needs at least one character of context")


def check_width(value: int, flag: Label) -> int:
    """A layer width (``--n-embd``, ``--n-hidden``)."""
    return check_int(flag, value, 1, "a layer needs at least one unit")


def check_steps(value: int, flag: Label = STEPS) -> int:
    return check_int(flag, value, 0)


def check_seed(value: int, flag: Label = SEED) -> int:
    """0 <= seed < 2**32: larger or negative seeds would silently alias other seeds."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(flag, f" must be an integer in [0, 2**32), got {value!r}")
    return value


def check_positive_float(value: float, flag: Label) -> float:
    """A finite number > 0 (a learning rate, a decay factor); text and booleans are refused (a
    checkpoint's JSON could hold either)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(flag, f" must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise ConfigError(flag, f" must be a finite number > 0, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(flag, f" must be a finite number > 0, got {value!r}")
    return number


def check_learning_rate(value: float, flag: Label = LR) -> float:
    return check_positive_float(value, flag)


def check_lr_representable(lr: float, decay: float, dtype: str) -> None:
    """The learning rate, and the decayed learning rate, are finite and non-zero in ``dtype``:
    one that underflows to 0 would train nothing, silently; one that overflows to inf (``--lr
    1e39`` in float32, or lr x decay past the largest float) would make every parameter NaN at
    the first step."""
    if dtype not in DTYPES:
        return  # the dtype check names the problem
    for what, value in ((LR, lr), (LR_TIMES_DECAY, lr * decay)):
        with np.errstate(over="ignore"):
            stored = np.asarray(value, dtype=dtype)
        shown = f" {value:g}" if what is LR else f" = {value:g}"  # lr= 1e+39, lr * lr_decay = ...
        if not np.isfinite(stored):
            largest = float(np.finfo(dtype).max)
            raise ConfigError(
                what,
                f"{shown} overflows to inf in {dtype} (largest {largest:.4g}); "
                "training would diverge at the first step",
            )
        if stored == 0:
            raise ConfigError(what, f"{shown} underflows to 0 in {dtype}; nothing would be learned")


def check_byte_count(value: int, flag: Label = MAX_DATA_BYTES) -> int:
    return check_int(flag, value, 1, "a word list has at least one byte")


def check_devices(value: int, flag: Label = N_DEVICES) -> int:
    return check_int(flag, value, 1, "data parallelism needs at least one device")


def check_divisible(batch_size: int, n_devices: int, flag: Label = BATCH_SIZE) -> int:
    """Every device must get the same number of examples: ``batch_size`` a multiple of N."""
    if batch_size % n_devices:
        lower = batch_size // n_devices * n_devices
        raise ConfigError(
            flag,
            f" {batch_size} does not divide evenly over {n_devices} devices "
            f"(use a multiple of {n_devices}, e.g. {lower or n_devices} or {lower + n_devices})",
        )
    return batch_size


def check_dtype(name: str, flag: Label = DTYPE) -> np.dtype:
    """The dtype called ``name`` (float32 or float64), checked; nothing is switched on."""
    if name not in DTYPES:
        raise ConfigError("unknown ", flag, f" {name!r} (choose from {', '.join(DTYPES)})")
    return np.dtype(name)


@contextlib.contextmanager
def dtype_scope(name: str, flag: Label = DTYPE) -> Iterator[np.dtype]:
    """The one dtype rule, for every entry point (``train``, ``run_training``, ``run_many``, the
    checks, ``sample``/``evaluate`` of a float64 checkpoint): ``name`` is checked, and float64
    turns on ``jax_enable_x64`` for the block only (checked to take effect: it cannot on some
    backends), restored to what it was afterwards. Float64 is never switched on at import."""
    dtype = check_dtype(name, flag)
    if dtype != np.float64:
        yield dtype
        return
    import jax

    before = jax.config.jax_enable_x64
    try:
        _turn_on_x64(flag)
        yield dtype
    finally:
        jax.config.update("jax_enable_x64", before)


def float_dtype(name: str, flag: Label = DTYPE) -> np.dtype:
    """The dtype called ``name`` inside code that computes in it: float64 only where x64 is on
    (inside :func:`dtype_scope`, or the caller's own ``jax_enable_x64``), or jax would silently
    compute in float32."""
    dtype = check_dtype(name, flag)
    if dtype == np.float64:
        import jax

        if not jax.config.jax_enable_x64:
            raise ConfigError(
                flag,
                " float64 needs jax_enable_x64 (jaxninja.train and run_training switch it "
                "on for the run; else jax.config.update('jax_enable_x64', True))",
            )
    return dtype


def _turn_on_x64(flag: Label) -> None:
    """Switch on float64 in jax and check that it took effect."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    try:
        with warnings.catch_warnings():  # jax warns, then truncates, when x64 is off
            warnings.simplefilter("ignore", UserWarning)
            probe = jnp.ones((2,), dtype=jnp.float64) / 3
        ok = probe.dtype == jnp.float64 and float(probe[0]) == 1 / 3
    except Exception as err:  # a backend without float64 raises its own error types
        raise ConfigError(
            flag,
            " float64: this jax/backend cannot compute in float64 "
            f"({type(err).__name__}: {err})".splitlines()[0],
        ) from None
    if not ok:
        raise ConfigError(
            flag,
            " float64: jax_enable_x64 did not take effect (arrays come out "
            f"as {probe.dtype}); try JAX_ENABLE_X64=1",
        )


def resolve_device(name: str, flag: Label = DEVICE) -> jax.Device:
    """The first jax device of platform ``name`` (``auto``: jax's default device)."""
    import jax

    if name not in DEVICES:
        raise ConfigError("unknown ", flag, f" {name!r} (choose from {', '.join(DEVICES)})")
    try:
        return jax.devices()[0] if name == "auto" else jax.devices(name)[0]
    except RuntimeError:
        present = sorted({d.platform for d in jax.devices()})
        raise ConfigError(
            flag, f" {name}: no such device here (jax sees: {', '.join(present)})"
        ) from None


def torch_available() -> bool:
    """Whether ``import torch`` can work, without paying for the import."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked torch (sys.modules["torch"] = None)
        return False


def default_references(has_torch_forward: bool = True) -> tuple[str, ...]:
    """What a check compares against when not told: jax, plus torch where it is installed (and
    the model has a torch forward). The one place this default is decided."""
    return ("jax", "torch") if has_torch_forward and torch_available() else ("jax",)


def check_against(name: str, flag: Label = AGAINST_NAME) -> str:
    """A reference to compare against; torch must be importable for ``torch``."""
    if name not in AGAINST:
        raise ConfigError("unknown ", flag, f" {name!r} (choose from {', '.join(AGAINST)})")
    if name == "torch" and not torch_available():
        raise ConfigError(
            flag,
            " torch: torch is not installed (pip install 'jaxninja[torch]', or use ",
            flag,
            " jax)",
        )
    return name
