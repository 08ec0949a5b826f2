"""Checkpoints: plain arrays in a ``.npz``, written atomically, verified before use, never pickled.

A checkpoint holds the parameters, the calibrated BatchNorm statistics (if any), the vocabulary,
the run's configuration, the number of steps done and the raw RNG key, so training can resume
bit for bit. The file is a ``numpy.savez`` archive of plain numeric arrays; the vocabulary and the
configuration are JSON text stored as a ``uint8`` array, so loading a stranger's checkpoint reads
data and never runs code (``numpy.load(..., allow_pickle=False)``). A SHA-256 checksum over every
array's name, dtype, shape and bytes catches a corrupted file, and ``format_version`` lets a
future layout be refused by name instead of being misread.

Writing goes to a temporary file in the same directory, is flushed and fsynced, then renamed over
the target with ``os.replace`` and the directory fsynced: after a crash there is either the old
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

import jax
import numpy as np

from jaxninja.data import BOUNDARY, Vocab
from jaxninja.errors import CheckpointError, ConfigError
from jaxninja.model import BNStats, Params

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"  # the file inside an --out / --resume directory
ZIP_MAGIC = b"PK\x03\x04"

PARAM_KEYS = tuple(f"params.{name}" for name in Params._fields)
BN_KEYS = ("bn_stats.mean", "bn_stats.var")
META_KEYS = ("format_version", "vocab_json", "config_json", "step", "rng_key")
CHECKSUM_KEY = "checksum"


class Checkpoint(NamedTuple):
    """Everything needed to evaluate, sample from, or resume a run.

    Arrays come back from :func:`load_checkpoint` as numpy arrays in their saved dtype; convert
    with ``jnp.asarray`` (float64 needs ``jax_enable_x64`` first, see settings.py).
    """

    params: Params
    bn_stats: BNStats | None
    vocab: Vocab
    config: dict[str, Any]  # JSON-able: n_embd, n_hidden, block_size, dtype, schedule, seed, data
    step: int  # steps done; training resumes at this step
    rng_key: np.ndarray  # raw uint32 key data, from jax.random.key_data(key)


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint file for ``path``: ``path/checkpoint.npz`` if ``path`` is a directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


# ----------------------------------------------------------------------------------- writing


def _json_array(value: Any) -> np.ndarray:
    """JSON text as a uint8 array: readable without pickle, covered by the checksum."""
    return np.frombuffer(json.dumps(value, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def _checksum(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """SHA-256 over each array's name, dtype, shape and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        header = f"{name}|{arr.dtype.str}|{arr.shape}|"
        digest.update(header.encode("utf-8"))
        digest.update(arr.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def to_arrays(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """The named plain arrays that make up ``ckpt`` on disk, checksum included."""
    arrays = {key: np.asarray(p) for key, p in zip(PARAM_KEYS, ckpt.params, strict=True)}
    if ckpt.bn_stats is not None:
        arrays |= {key: np.asarray(s) for key, s in zip(BN_KEYS, ckpt.bn_stats, strict=True)}
    try:
        config_json = _json_array(ckpt.config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint config is not JSON-able: {err}") from None
    arrays |= {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "vocab_json": _json_array({"chars": ckpt.vocab.chars}),
        "config_json": config_json,
        "step": np.array(int(ckpt.step), dtype=np.int64),
        "rng_key": np.asarray(ckpt.rng_key, dtype=np.uint32),
    }
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise CheckpointError(f"checkpoint array {name!r} has dtype object; refusing to save")
    arrays[CHECKSUM_KEY] = _checksum(arrays)
    return arrays


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the directory entry (not possible on every OS)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(
    path: str | os.PathLike, write: Callable[[IO[bytes]], object], what: str = "file"
) -> None:
    """``write(f)`` into a temporary file beside ``path``, flush, fsync, rename over ``path``,
    fsync the folder: a crash leaves the old file or the new one, never half of either.

    On failure the temporary file is removed, a previous file at ``path`` is untouched, and the
    error is a :class:`CheckpointError` naming the file. The mode follows the umask.
    """
    path = Path(path)
    folder = path.parent
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; be a normal file
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot write {what} ({err.strerror or err})") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    _fsync_dir(folder)


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (see :func:`write_atomic`)."""
    arrays = to_arrays(ckpt)
    write_atomic(path, lambda f: np.savez(f, **arrays), "checkpoint")


def prepare_out_dir(out: str | os.PathLike, flag: str = "--out") -> Path:
    """Check that ``out`` is (or can be made) a writable directory; create it if missing.

    Checked by writing and removing a probe file, which also works when running as root (where
    ``os.access`` says yes to everything). Raises :class:`ConfigError` naming the flag and path.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out}: is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".jaxninja-probe."):
            pass
    except OSError as err:
        raise ConfigError(
            f"{flag} {out}: not a writable directory ({err.strerror or err})"
        ) from None
    return out


# ----------------------------------------------------------------------------------- reading


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``, read with ``allow_pickle=False``."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
    if magic != ZIP_MAGIC:
        what = "an empty file" if not magic else "not an .npz archive"
        raise CheckpointError(f"{path}: not a jaxninja checkpoint ({what})")
    arrays: dict[str, np.ndarray] = {}
    name = ""
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                arrays[name] = npz[name]
                if not isinstance(arrays[name], np.ndarray):  # a zip member that is not .npy
                    raise CheckpointError(f"{path}: member {name!r} is not a numpy array")
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(
                f"{path}: array {name!r} is a pickled object array; refusing "
                f"to load it (a checkpoint holds plain data only)"
            ) from None
        raise CheckpointError(f"{path}: corrupt checkpoint ({_first_line(err)})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, MemoryError) as err:
        reason = _first_line(err) or type(err).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    return arrays


def _first_line(err: BaseException) -> str:
    """An exception's message cut to one line (the CLI promises one-line errors)."""
    lines = str(err).splitlines()
    return lines[0] if lines else ""


def _json_value(path: Path, arrays: dict[str, np.ndarray], key: str) -> Any:
    arr = arrays[key]
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise CheckpointError(
            f"{path}: {key} should be uint8 JSON text, got {arr.dtype} {arr.shape}"
        )
    try:
        return json.loads(arr.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: {key} is not valid JSON ({err})") from None


def _check_version(path: Path, arrays: dict[str, np.ndarray]) -> None:
    if "format_version" not in arrays:
        raise CheckpointError(f"{path}: not a jaxninja checkpoint (no format_version)")
    version_arr = arrays["format_version"]
    if version_arr.shape != () or version_arr.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: format_version should be an integer scalar")
    version = int(version_arr)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this jaxninja "
            f"reads (version {FORMAT_VERSION}); upgrade jaxninja"
        )
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unknown format version {version} (this jaxninja reads "
            f"version {FORMAT_VERSION})"
        )


def _check_keys(path: Path, arrays: dict[str, np.ndarray]) -> None:
    required = set(META_KEYS) | set(PARAM_KEYS) | {CHECKSUM_KEY}
    missing = sorted(required - set(arrays))
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks array(s) {', '.join(missing)}")
    has_bn = [key in arrays for key in BN_KEYS]
    if any(has_bn) and not all(has_bn):
        raise CheckpointError(f"{path}: checkpoint has only one of {', '.join(BN_KEYS)}")
    unexpected = sorted(set(arrays) - required - set(BN_KEYS))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected array(s) {', '.join(unexpected)}")


def _check_checksum(path: Path, arrays: dict[str, np.ndarray]) -> None:
    stored = arrays[CHECKSUM_KEY]
    payload = {k: v for k, v in arrays.items() if k != CHECKSUM_KEY}
    if stored.dtype != np.uint8 or not np.array_equal(stored, _checksum(payload)):
        raise CheckpointError(f"{path}: checksum mismatch; the file is corrupt or was modified")


def expected_shapes(
    vocab_size: int, n_embd: int, n_hidden: int, block_size: int
) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter and statistic for these sizes."""
    return {
        "params.C": (vocab_size, n_embd),
        "params.W1": (block_size * n_embd, n_hidden),
        "params.b1": (n_hidden,),
        "params.W2": (n_hidden, vocab_size),
        "params.b2": (vocab_size,),
        "params.bngain": (1, n_hidden),
        "params.bnbias": (1, n_hidden),
        "bn_stats.mean": (1, n_hidden),
        "bn_stats.var": (1, n_hidden),
    }


def _check_shapes(
    path: Path, arrays: dict[str, np.ndarray], vocab: Vocab, config: dict[str, Any]
) -> None:
    """Parameters agree with each other, the vocabulary and the sizes recorded in the config."""
    C, W1 = arrays["params.C"], arrays["params.W1"]
    if C.ndim != 2 or W1.ndim != 2 or C.shape[1] == 0 or W1.shape[0] % C.shape[1]:
        raise CheckpointError(
            f"{path}: inconsistent shapes params.C {C.shape}, params.W1 {W1.shape}"
        )
    sizes = {"n_embd": C.shape[1], "n_hidden": W1.shape[1], "block_size": W1.shape[0] // C.shape[1]}
    for key, value in sizes.items():
        if key in config and config[key] != value:
            raise CheckpointError(
                f"{path}: config {key}={config[key]} but the arrays have {key}={value}"
            )
    want = expected_shapes(vocab.size, **sizes)
    for key, arr in arrays.items():
        if key in want and arr.shape != want[key]:
            raise CheckpointError(
                f"{path}: {key} has shape {arr.shape}, expected {want[key]} "
                f"for vocabulary size {vocab.size} and {sizes}"
            )
    dtypes = {arrays[key].dtype for key in PARAM_KEYS + BN_KEYS if key in arrays}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise CheckpointError(
            f"{path}: parameters should share one float dtype, got {sorted(str(d) for d in dtypes)}"
        )
    if "dtype" in config and str(config["dtype"]) != str(next(iter(dtypes))):
        raise CheckpointError(
            f"{path}: config dtype={config['dtype']} but the arrays are {next(iter(dtypes))}"
        )


def _check_expected(
    path: Path,
    vocab: Vocab,
    config: dict[str, Any],
    expect_vocab: Vocab | None,
    expect_config: dict[str, Any] | None,
) -> None:
    """The checkpoint fits the data and flags it is about to be used with."""
    if expect_vocab is not None and expect_vocab.chars != vocab.chars:
        raise CheckpointError(
            f"{path}: checkpoint vocabulary ({vocab.size} tokens, "
            f"{vocab.chars!r}) does not match the data's ({expect_vocab.size} "
            f"tokens, {expect_vocab.chars!r})"
        )
    for key, value in (expect_config or {}).items():
        if key not in config:
            raise CheckpointError(f"{path}: checkpoint config has no {key!r} (expected {value!r})")
        if config[key] != value:
            raise CheckpointError(
                f"{path}: checkpoint has {key}={config[key]!r} but {key}={value!r} was asked for"
            )


def load_checkpoint(
    path: str | os.PathLike,
    expect_vocab: Vocab | None = None,
    expect_config: dict[str, Any] | None = None,
) -> Checkpoint:
    """Read and verify a checkpoint (a file, or a directory holding ``checkpoint.npz``).

    Verifies, in order: the file is an ``.npz`` archive of plain arrays, the format version,
    that every array is present, the checksum, the shapes against each other and the vocabulary,
    and finally ``expect_vocab`` / ``expect_config`` (the data and flags of this run). Any
    failure is a one-line :class:`CheckpointError` naming the file and the problem.
    """
    if Path(path).is_dir() and not checkpoint_file(path).exists():
        raise CheckpointError(f"{path}: is a directory without a {CHECKPOINT_NAME}")
    path = checkpoint_file(path)
    arrays = _read_arrays(path)
    _check_version(path, arrays)
    _check_keys(path, arrays)
    _check_checksum(path, arrays)
    vocab_json = _json_value(path, arrays, "vocab_json")
    config = _json_value(path, arrays, "config_json")
    if not isinstance(vocab_json, dict) or not isinstance(vocab_json.get("chars"), str):
        raise CheckpointError(f"{path}: vocab_json should be an object with a 'chars' string")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config_json should be a JSON object")
    chars = vocab_json["chars"]
    if len(set(chars)) != len(chars) or BOUNDARY in chars or len(chars) < 2:
        raise CheckpointError(
            f"{path}: vocabulary {chars!r} is not a set of at least 2 "
            f"characters without {BOUNDARY!r}"
        )
    vocab = Vocab(chars)
    _check_shapes(path, arrays, vocab, config)
    _check_expected(path, vocab, config, expect_vocab, expect_config)
    step = arrays["step"]
    if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
        raise CheckpointError(f"{path}: step should be a non-negative integer scalar")
    rng_key = arrays["rng_key"]
    try:
        if rng_key.ndim != 1:
            raise ValueError("expected one key")
        jax.random.wrap_key_data(rng_key)  # the shape and dtype jax's default PRNG needs
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: rng_key {rng_key.dtype} {rng_key.shape} is not a jax "
            f"PRNG key ({err})".splitlines()[0]
        ) from None
    params = Params(*(arrays[key] for key in PARAM_KEYS))
    bn_stats = BNStats(*(arrays[key] for key in BN_KEYS)) if BN_KEYS[0] in arrays else None
    return Checkpoint(params, bn_stats, vocab, config, int(step), rng_key)
