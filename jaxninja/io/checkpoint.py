"""Checkpoints: plain arrays in a ``.npz``, written atomically, verified before use, never pickled.

A checkpoint holds the parameters, the calibrated BatchNorm statistics (if any), the vocabulary,
the run's configuration, the number of steps done, the raw RNG key and (format version 2) a
content hash of the word list, so training can resume bit for bit and refuse other data. The
file is a ``numpy.savez`` archive of plain numeric arrays; the vocabulary and the configuration
are JSON text stored as a ``uint8`` array, so loading a stranger's checkpoint reads data and
never runs code. A SHA-256 checksum over every array's name, dtype, shape and bytes catches a
corrupted file, and ``format_version`` lets a future layout be refused by name instead of being
misread. Version 1 files (no data hash) still load, with ``data_hash`` None.

Reading treats the file as hostile input (:mod:`jaxninja.io.safe_npz` checks the archive's structure
and every ``.npy`` header against the limits below before anything is allocated; compressed
archives, ``np.savez_compressed``, **are read** within the same bounds). Then the checkpoint's
own contents: JSON text bounded in size and in nesting (:data:`MAX_JSON_DEPTH`) before
``json.loads``, NaN / Infinity refused, the step at most :data:`MAX_STEP`, the checksum, the
shapes, the vocabulary. Every failure is one :class:`CheckpointError` line.

Writing is :func:`jaxninja.io.atomic.write_atomic`: a crash leaves the old checkpoint or the new
one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxninja import checks
from jaxninja.config import TrainConfig
from jaxninja.data import BOUNDARY, Dataset, Vocab, vocab_problem
from jaxninja.errors import CheckpointError, ConfigError
from jaxninja.io import runfolder, safe_npz
from jaxninja.io.atomic import write_atomic
from jaxninja.io.safe_npz import MAX_NPY_HEADER, NPY_PREFIX, first_line
from jaxninja.lecture.model import BNStats, Params
from jaxninja.numerics import non_finite

FORMAT_VERSION = 3  # 2 added data_hash; 3 a model file's checkpoint; 1 and 2 are still read
LECTURE_VERSION = 2  # what the lecture's checkpoints are written as (unchanged since 2)
OLDEST_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"  # the file inside an --out / --resume directory

PARAM_KEYS = tuple(f"params.{name}" for name in Params._fields)
BN_KEYS = ("bn_stats.mean", "bn_stats.var")
META_KEYS = ("format_version", "vocab_json", "config_json", "step", "rng_key")
CHECKSUM_KEY = "checksum"
DATA_HASH_KEY = "data_hash"  # version 2, optional: words_hash of the training words, as ASCII
KNOWN_KEYS = frozenset((*PARAM_KEYS, *BN_KEYS, *META_KEYS, CHECKSUM_KEY, DATA_HASH_KEY))
MODEL_KEY = "model_json"  # version 3: which model file (spec, file name, SHA-256 of its source)
# Version 3 holds a model file's parameters and training statistics by key path
# (params.l1.W, stats.l1.mean): names of at most 200 ASCII letters, digits, _ and .
TREE_KEY = re.compile(r"(params|stats)\.[A-Za-z0-9_][A-Za-z0-9_.]{0,199}")
MODEL_FIELDS = ("model", "file", "sha256")
TEXT_KEYS = ("vocab_json", "config_json", MODEL_KEY)
SMALL_KEYS = ("format_version", "step", "rng_key", CHECKSUM_KEY, DATA_HASH_KEY)

# --- reading limits: each is far above what jaxninja writes, and bounds what a stranger can ask
# All arrays together, uncompressed: 2 GiB is 500 million float32 parameters, 40,000 times the
# lecture's model; a bigger file is not one this project made, and is refused before allocating.
MAX_TOTAL_BYTES = 2**31
# Each JSON member: the config is ~300 bytes; a vocabulary of 87,000 characters (JSON escapes
# each as 6-12 bytes) still fits in 1 MiB, more than any word list's alphabet.
MAX_TEXT_BYTES = 2**20
MAX_SMALL_BYTES = 4096  # format_version, step, rng_key, checksum, data_hash: under 200 bytes each
MAX_JSON_DEPTH = 16  # the config nests 2 levels (config -> schedule)
# Steps done: at most 10**9. Resuming sizes a float32 loss history by it (4 GB at the bound,
# which the memory estimate then checks against the machine); 10**9 stays below 2**31, where
# jax's int32 step counter (without x64) would wrap; and at 20,000 steps/s, faster than this
# project measures, it is 14 hours of training, 5,000 times the lecture's 200,000 steps.
MAX_STEP = 10**9
PARAM_DTYPES = ("float32", "float64")  # what a run trains in (float16, float128: not jax's)
SIZE_KEYS = ("n_embd", "n_hidden", "block_size")  # the configuration's sizes, always stored
_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\]')
HASH_RE = re.compile(r"[0-9a-f]{64}")


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
    data_hash: str | None = None  # data.words_hash of the training words; None: not recorded
    stats: Any = None  # a model file's training statistics (by name); the lecture has none
    model: dict[str, str] | None = None  # a model file's record (MODEL_FIELDS); None: lecture


def checkpoint_file(path: str | os.PathLike, keyword: str = "checkpoint") -> Path:
    """The checkpoint file for ``path``: ``path/checkpoint.npz`` if ``path`` is a directory that
    holds one run, and nothing else of a run (else one line naming what it holds instead).
    ``keyword``: the Python argument that gave ``path``, named if it is not a path."""
    checks.check_path(path, keyword)
    path = Path(path)
    return runfolder.one_run(path) if path.is_dir() else path


# ----------------------------------------------------------------------------------- writing


def _json_array(value: Any) -> np.ndarray:
    """JSON text as a uint8 array: readable without pickle, covered by the checksum. NaN and
    Infinity are refused (they are not JSON, and the reader refuses them)."""
    text = json.dumps(value, sort_keys=True, allow_nan=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


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
    if ckpt.model is None:
        arrays = {key: np.asarray(p) for key, p in zip(PARAM_KEYS, ckpt.params, strict=True)}
        if ckpt.bn_stats is not None:
            arrays |= {key: np.asarray(s) for key, s in zip(BN_KEYS, ckpt.bn_stats, strict=True)}
    else:  # a model file's: every leaf by its key path, and which model it was
        arrays = _named("params", ckpt.params) | _named("stats", ckpt.stats)
        arrays[MODEL_KEY] = _json_array({k: str(ckpt.model[k]) for k in MODEL_FIELDS})
    try:
        config_json = _json_array(ckpt.config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint config is not JSON-able: {err}") from None
    arrays |= {
        "format_version": np.array(
            LECTURE_VERSION if ckpt.model is None else FORMAT_VERSION, dtype=np.int64
        ),
        "vocab_json": _json_array({"chars": ckpt.vocab.chars}),
        "config_json": config_json,
        "step": np.array(int(ckpt.step), dtype=np.int64),
        "rng_key": np.asarray(ckpt.rng_key, dtype=np.uint32),
    }
    if not 0 <= int(ckpt.step) <= MAX_STEP:
        raise CheckpointError(f"checkpoint step {ckpt.step} is outside 0..{MAX_STEP:,}")
    if ckpt.data_hash is not None:
        if not isinstance(ckpt.data_hash, str) or not HASH_RE.fullmatch(ckpt.data_hash):
            raise CheckpointError(f"checkpoint data_hash {ckpt.data_hash!r} is not a SHA-256 hex")
        arrays[DATA_HASH_KEY] = np.frombuffer(ckpt.data_hash.encode("ascii"), dtype=np.uint8)
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise CheckpointError(f"checkpoint array {name!r} has dtype object; refusing to save")
    arrays[CHECKSUM_KEY] = _checksum(arrays)
    return arrays


def _named(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    """``tree``'s leaves by key path (``params.l1.W``): a parameter pytree saved as plain
    arrays, read back by :func:`jaxninja.models.trainable.restore_tree`."""
    if tree is None:
        return {}
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = {}
    for path, leaf in paths:
        key = f"{prefix}.{jax.tree_util.keystr(path, simple=True, separator='.')}"
        if not TREE_KEY.fullmatch(key):
            raise CheckpointError(f"cannot save {key!r}: names are letters, digits, _ and .")
        out[key] = np.asarray(leaf)
    return out


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (see :func:`write_atomic`)."""
    arrays = to_arrays(ckpt)
    write_atomic(path, lambda f: np.savez(f, **arrays), "checkpoint")


# ----------------------------------------------------------------------------------- reading


def _member_limit(key: str) -> int:
    """The most bytes member ``key``.npy may hold, uncompressed (header included)."""
    if key in TEXT_KEYS:
        return MAX_TEXT_BYTES + MAX_NPY_HEADER + NPY_PREFIX
    if key in SMALL_KEYS:
        return MAX_SMALL_BYTES
    return MAX_TOTAL_BYTES


def _read_arrays(path: Path, max_bytes: int = MAX_TOTAL_BYTES) -> dict[str, np.ndarray]:
    """Every array of the checkpoint at ``path``, read within the checkpoint's bounds."""
    limit_of = lambda key: min(_member_limit(key), max_bytes)  # noqa: E731
    return safe_npz.read_archive(
        path, safe_npz.ArchiveLayout(_known, "format_version", limit_of, max_bytes)
    )


def _known(name: str) -> bool:
    """A name a checkpoint of any version may hold."""
    return name in KNOWN_KEYS or name == MODEL_KEY or TREE_KEY.fullmatch(name) is not None


def _json_depth(raw: bytes, limit: int) -> int:
    """How deeply ``raw`` nests ``[`` / ``{`` outside strings, counting up to ``limit + 1`` (a
    linear scan over the few special bytes, so a hostile text cannot make it slow)."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(raw):
        i, ch = match.start(), match.group()
        if i == escaped_at:
            continue
        if in_string:
            if ch == b"\\":
                escaped_at = i + 1
            elif ch == b'"':
                in_string = False
        elif ch == b'"':
            in_string = True
        elif ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif ch in b"]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_value(path: Path, arrays: dict[str, np.ndarray], key: str) -> Any:
    """The JSON text in ``arrays[key]``, its size and nesting bounded before it is parsed."""
    arr = arrays[key]
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise CheckpointError(
            f"{path}: {key} should be uint8 JSON text, got {arr.dtype} {arr.shape}"
        )
    raw = arr.tobytes()
    if len(raw) > MAX_TEXT_BYTES:
        raise CheckpointError(f"{path}: {key} is {len(raw):,} bytes (at most {MAX_TEXT_BYTES:,})")
    depth = _json_depth(raw, MAX_JSON_DEPTH)
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{path}: {key} nests deeper than {MAX_JSON_DEPTH} levels (a checkpoint's nests 2)"
        )
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as err:  # also int digits over Python's limit
        raise CheckpointError(f"{path}: {key} is not valid JSON ({first_line(err)})") from None


def _check_version(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """The format version, one this jaxninja reads (OLDEST_VERSION to FORMAT_VERSION)."""
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
    if version < OLDEST_VERSION:
        raise CheckpointError(
            f"{path}: unknown format version {version} (this jaxninja reads "
            f"versions {OLDEST_VERSION} to {FORMAT_VERSION})"
        )
    return version


def _check_keys(path: Path, arrays: dict[str, np.ndarray], version: int) -> None:
    """Every array the version needs, BatchNorm statistics both or neither, nothing else."""
    required = set(META_KEYS) | set(PARAM_KEYS) | {CHECKSUM_KEY}
    optional = set(BN_KEYS) | ({DATA_HASH_KEY} if version >= 2 else set())
    missing = sorted(required - set(arrays))
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks array(s) {', '.join(missing)}")
    has_bn = [key in arrays for key in BN_KEYS]
    if any(has_bn) and not all(has_bn):
        raise CheckpointError(f"{path}: checkpoint has only one of {', '.join(BN_KEYS)}")
    unexpected = sorted(set(arrays) - required - optional)
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


def _check_config(path: Path, config: dict[str, Any]) -> None:
    """The stored configuration names every size (a checkpoint without one could be resumed into
    a checkpoint that never loads again) and is valid as flags are: a checkpoint is input from a
    stranger, its checksum only says it is whole."""
    missing = [key for key in SIZE_KEYS if key not in config]
    if missing:
        raise CheckpointError(
            f"{path}: the stored configuration lacks {', '.join(missing)} (every size is stored)"
        )
    try:
        TrainConfig.from_dict(config)
    except ConfigError as err:  # its setting named as the caller spells settings
        raise CheckpointError(f"{path}: the stored configuration is invalid: ", err) from None
    except (TypeError, ValueError, OverflowError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: the stored configuration is invalid: {reason}") from None


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
    empty = [key for key, value in sizes.items() if value < 1]
    if empty:
        raise CheckpointError(f"{path}: the arrays have {', '.join(empty)} of 0 ({sizes})")
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
    if len(dtypes) != 1 or str(next(iter(dtypes))) not in PARAM_DTYPES:
        raise CheckpointError(
            f"{path}: parameters should share one dtype of {', '.join(PARAM_DTYPES)}, got "
            f"{sorted(str(d) for d in dtypes)}"
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


def _vocab(path: Path, arrays: dict[str, np.ndarray]) -> Vocab:
    """The stored vocabulary: at least 2 distinct characters, none a word may not hold (so a
    stranger's vocabulary cannot put terminal escapes or invisible characters into samples)."""
    vocab_json = _json_value(path, arrays, "vocab_json")
    if not isinstance(vocab_json, dict) or not isinstance(vocab_json.get("chars"), str):
        raise CheckpointError(f"{path}: vocab_json should be an object with a 'chars' string")
    chars = vocab_json["chars"]
    if len(set(chars)) != len(chars) or BOUNDARY in chars or len(chars) < 2:
        raise CheckpointError(
            f"{path}: vocabulary {chars!r} is not a set of at least 2 "
            f"characters without {BOUNDARY!r}"
        )
    problem = vocab_problem(chars)
    if problem:
        raise CheckpointError(f"{path}: vocabulary {problem}")
    return Vocab(chars)


def _step(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """Steps done: an integer scalar in 0..MAX_STEP (see MAX_STEP for why that bound)."""
    step = arrays["step"]
    if step.shape != () or step.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: step should be a non-negative integer scalar")
    value = int(step)
    if not 0 <= value <= MAX_STEP:
        raise CheckpointError(
            f"{path}: step {value:,} is outside 0..{MAX_STEP:,} (a run that long would not "
            f"fit its loss history in memory; the file is corrupt or forged)"
        )
    return value


def _rng_key(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Raw key data that jax's default PRNG accepts."""
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
    return rng_key


def _data_hash(path: Path, arrays: dict[str, np.ndarray]) -> str | None:
    """The recorded words_hash (64 lowercase hex digits), or None if none was recorded."""
    if DATA_HASH_KEY not in arrays:
        return None
    arr = arrays[DATA_HASH_KEY]
    text = arr.tobytes().decode("ascii", "replace") if arr.dtype == np.uint8 else ""
    if arr.ndim != 1 or not HASH_RE.fullmatch(text):
        raise CheckpointError(f"{path}: data_hash should be 64 hex digits as uint8 text")
    return text


def load_checkpoint(
    path: str | os.PathLike,
    expect_vocab: Vocab | None = None,
    expect_config: dict[str, Any] | None = None,
    max_bytes: int = MAX_TOTAL_BYTES,
) -> Checkpoint:
    """Read and verify a checkpoint (a file, or a directory holding ``checkpoint.npz``).

    ``max_bytes`` lowers the limit on all arrays together (e.g. to the memory this machine
    has); it cannot raise it above :data:`MAX_TOTAL_BYTES`.

    Verifies, in order: the file is an ``.npz`` archive of plain arrays within the reading
    limits (see the module docstring), the format version (1 or 2), that every array is
    present, the checksum, the JSON texts, the shapes against each other and the vocabulary,
    ``expect_vocab`` / ``expect_config`` (the data and flags of this run), the step, the RNG key
    and the data hash. Any failure is a one-line :class:`CheckpointError` naming the file and
    the problem. The configuration must name every size and is validated as flags are.
    """
    path = checkpoint_file(path)
    arrays = _read_arrays(path, min(max_bytes, MAX_TOTAL_BYTES))
    version = _check_version(path, arrays)
    if MODEL_KEY in arrays or version >= 3:
        return _load_model_checkpoint(path, arrays, version, expect_vocab, expect_config)
    _check_keys(path, arrays, version)
    _check_checksum(path, arrays)
    vocab = _vocab(path, arrays)
    config = _json_value(path, arrays, "config_json")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config_json should be a JSON object")
    _check_config(path, config)
    _check_shapes(path, arrays, vocab, config)
    _check_expected(path, vocab, config, expect_vocab, expect_config)
    step = _step(path, arrays)
    rng_key = _rng_key(path, arrays)
    data_hash = _data_hash(path, arrays)
    params = Params(*(arrays[key] for key in PARAM_KEYS))
    bn_stats = BNStats(*(arrays[key] for key in BN_KEYS)) if BN_KEYS[0] in arrays else None
    return Checkpoint(params, bn_stats, vocab, config, step, rng_key, data_hash)


def _load_model_checkpoint(
    path: Path,
    arrays: dict[str, np.ndarray],
    version: int,
    expect_vocab: Vocab | None,
    expect_config: dict[str, Any] | None,
) -> Checkpoint:
    """A model file's checkpoint (version 3): the same checks as the lecture's, except that the
    shapes are the model's to check (:func:`jaxninja.models.trainable.restore_tree`); here every
    array is a float array of one dtype and the record names a model."""
    if version < 3 or MODEL_KEY not in arrays:
        has = "has" if MODEL_KEY in arrays else "lacks"
        raise CheckpointError(f"{path}: format version {version} {has} {MODEL_KEY}")
    required = set(META_KEYS) | {CHECKSUM_KEY, MODEL_KEY}
    missing = sorted(required - set(arrays))
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks array(s) {', '.join(missing)}")
    trees = {k: v for k, v in arrays.items() if TREE_KEY.fullmatch(k)}
    unexpected = sorted(set(arrays) - required - {DATA_HASH_KEY} - set(trees))
    if unexpected or not any(k.startswith("params.") for k in arrays):
        shown = ", ".join(unexpected) or "no params.* array"
        raise CheckpointError(f"{path}: unexpected content for a model checkpoint: {shown}")
    _check_checksum(path, arrays)
    vocab = _vocab(path, arrays)
    config = _json_value(path, arrays, "config_json")
    model = _json_value(path, arrays, MODEL_KEY)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config_json should be a JSON object")
    if (
        not isinstance(model, dict)
        or sorted(model) != sorted(MODEL_FIELDS)
        or not all(isinstance(v, str) and len(v) <= 4096 for v in model.values())
    ):
        raise CheckpointError(f"{path}: {MODEL_KEY} should name the model, its file and sha256")
    dtypes = {a.dtype for a in trees.values()}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise CheckpointError(
            f"{path}: parameters should share one float dtype, got {sorted(map(str, dtypes))}"
        )
    if "dtype" in config and str(config["dtype"]) != str(next(iter(dtypes))):
        raise CheckpointError(
            f"{path}: config dtype={config['dtype']} but the arrays are {next(iter(dtypes))}"
        )
    _check_expected(path, vocab, config, expect_vocab, expect_config)
    step, rng_key, data_hash = _step(path, arrays), _rng_key(path, arrays), _data_hash(path, arrays)
    params = {k.removeprefix("params."): v for k, v in trees.items() if k.startswith("params.")}
    stats = {k.removeprefix("stats."): v for k, v in trees.items() if k.startswith("stats.")}
    return Checkpoint(params, None, vocab, config, step, rng_key, data_hash, stats or None, model)


def refuse_diverged(ckpt: Checkpoint | None, where: str | os.PathLike) -> None:
    """A checkpoint whose parameters hold NaN or inf (a run that diverged) cannot be resumed:
    its first step would be NaN, and the checkpoint is no 'last good' one. One line naming the
    arrays and how much of each is not finite."""
    if ckpt is None:
        return
    lecture = not isinstance(ckpt.params, dict)  # a model file's are by name already
    named = zip(Params._fields, ckpt.params, strict=True) if lecture else ckpt.params.items()
    bad = non_finite(named)
    if bad:
        raise CheckpointError(
            f"{where}: non-finite parameters: {', '.join(bad)}; the run diverged, so it cannot "
            "be resumed (resume an earlier checkpoint, or train again with a smaller ",
            checks.LR,
            ")",
        )


def check_same_data(
    path: str | os.PathLike, ckpt: Checkpoint, dataset: Dataset, allow_other_data: bool = False
) -> str | None:
    """Whether ``dataset`` holds the words ``ckpt`` was trained on (``--resume``).

    Raises a one-line :class:`CheckpointError` if the recorded hash differs and
    ``allow_other_data`` is false. Returns a note to print when the check could not be made
    (a version-1 checkpoint records no hash; a Dataset built by hand has none) or was
    overridden, and None when the data is the same.
    """
    if ckpt.data_hash is None:
        return (
            f"{path}: the checkpoint records no data hash (format version 1, or saved "
            f"without one), so it cannot be checked that {dataset.source} is the data it was "
            f"trained on"
        )
    if not dataset.data_hash:
        return f"{path}: {dataset.source} has no data hash to compare with the checkpoint's"
    if dataset.data_hash == ckpt.data_hash:
        return None
    if allow_other_data:
        return (
            f"{path}: resuming on other data than the checkpoint was trained on "
            f"({dataset.source}, hash {dataset.data_hash[:12]}, not {ckpt.data_hash[:12]})"
        )
    raise CheckpointError(
        f"{path}: was trained on other data (hash {ckpt.data_hash[:12]}) than "
        f"{dataset.source} (hash {dataset.data_hash[:12]}); pass ",
        checks.ALLOW_OTHER_DATA,
        " to resume anyway",
    )
