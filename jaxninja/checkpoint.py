"""Checkpoints: plain arrays in a ``.npz``, written atomically, verified before use, never pickled.

A checkpoint holds the parameters, the calibrated BatchNorm statistics (if any), the vocabulary,
the run's configuration, the number of steps done, the raw RNG key and (format version 2) a
content hash of the word list, so training can resume bit for bit and refuse other data. The
file is a ``numpy.savez`` archive of plain numeric arrays; the vocabulary and the configuration
are JSON text stored as a ``uint8`` array, so loading a stranger's checkpoint reads data and
never runs code. A SHA-256 checksum over every array's name, dtype, shape and bytes catches a
corrupted file, and ``format_version`` lets a future layout be refused by name instead of being
misread. Version 1 files (no data hash) still load, with ``data_hash`` None.

Reading treats the file as hostile input: every failure is one :class:`CheckpointError` line,
and memory and time are bounded before anything is allocated.

- Only a regular file is opened (a FIFO cannot hang it, ``/dev/zero`` is not read).
- The archive must end in a plain end-of-directory record (no comment, no ZIP64) listing at
  most :data:`MAX_MEMBERS` members in :data:`MAX_DIRECTORY_BYTES` of directory.
- From the zip directory, before any member is read: each member is a known ``<name>.npy``
  (once), not encrypted, within its own limit (:data:`MAX_TEXT_BYTES` for JSON,
  :data:`MAX_SMALL_BYTES` for scalars, key and hashes), all of them within
  :data:`MAX_TOTAL_BYTES`, and no two overlapping.
- Compressed archives (``np.savez_compressed``, deflate) **are read**: their sizes are checked
  from the directory like any other, a member may not inflate more than :data:`MAX_RATIO`:1
  beyond :data:`RATIO_FLOOR` bytes (a zip bomb), and decompression stops at the directory's
  size. Other compression methods (bzip2, lzma, ...) are refused in one line.
- Each ``.npy`` header is at most :data:`MAX_NPY_HEADER` bytes, version 1 or 2, C order, a plain
  native number dtype, and its shape x itemsize must equal the member's size less the header;
  the data is then read in chunks into the array and the zip CRC checked.
- JSON text is bounded in size and in nesting (:data:`MAX_JSON_DEPTH`) before ``json.loads``;
  NaN / Infinity are refused. The step is at most :data:`MAX_STEP`.

Writing goes to a temporary file in the same directory, is flushed and fsynced, then renamed over
the target with ``os.replace`` and the directory fsynced: after a crash there is either the old
checkpoint or the new one, never half of one. A temporary file left by a killed write
(``.<name>.<pid>.<random>.tmp``) is removed by the next write of that file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

import jax
import numpy as np

from jaxninja.data import BOUNDARY, Dataset, NotRegularFile, Vocab, open_regular, vocab_problem
from jaxninja.errors import CheckpointError, ConfigError
from jaxninja.model import BNStats, Params

FORMAT_VERSION = 2  # 2 added data_hash; 1 is still read
OLDEST_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"  # the file inside an --out / --resume directory
ZIP_MAGIC = b"PK\x03\x04"

PARAM_KEYS = tuple(f"params.{name}" for name in Params._fields)
BN_KEYS = ("bn_stats.mean", "bn_stats.var")
META_KEYS = ("format_version", "vocab_json", "config_json", "step", "rng_key")
CHECKSUM_KEY = "checksum"
DATA_HASH_KEY = "data_hash"  # version 2, optional: words_hash of the training words, as ASCII
KNOWN_KEYS = frozenset((*PARAM_KEYS, *BN_KEYS, *META_KEYS, CHECKSUM_KEY, DATA_HASH_KEY))
TEXT_KEYS = ("vocab_json", "config_json")
SMALL_KEYS = ("format_version", "step", "rng_key", CHECKSUM_KEY, DATA_HASH_KEY)

# --- reading limits: each is far above what jaxninja writes, and bounds what a stranger can ask
# All arrays together, uncompressed: 2 GiB is 500 million float32 parameters, 40,000 times the
# lecture's model; a bigger file is not one this project made, and is refused before allocating.
MAX_TOTAL_BYTES = 2**31
# Each JSON member: the config is ~300 bytes; a vocabulary of 87,000 characters (JSON escapes
# each as 6-12 bytes) still fits in 1 MiB, more than any word list's alphabet.
MAX_TEXT_BYTES = 2**20
MAX_SMALL_BYTES = 4096  # format_version, step, rng_key, checksum, data_hash: under 200 bytes each
MAX_NPY_HEADER = 1024  # numpy writes 128-byte headers for these arrays (64-byte aligned)
NPY_PREFIX = 12  # magic (6), version (2), header length (2 or 4)
MAX_NDIM = 8  # every checkpoint array has 0-2 axes
MAX_MEMBERS = 32  # a checkpoint has 16 (7 params, 2 statistics, 5 metadata, checksum, hash)
MAX_DIRECTORY_BYTES = 2**16  # 32 entries of ~100 bytes; bounds the ZipInfos zipfile builds
# Compressed members: float parameters deflate by under 1.2:1 and JSON by ~4:1, while deflate's
# worst case (a zip bomb) is 1032:1. Members under RATIO_FLOOR may have any ratio (zeros, tiny
# arrays): inflating 1 MiB is instant whatever it came from.
MAX_RATIO = 100
RATIO_FLOOR = 2**20
MAX_JSON_DEPTH = 16  # the config nests 2 levels (config -> schedule)
# Steps done: at most 10**9. Resuming sizes a float32 loss history by it (4 GB at the bound,
# which the memory estimate then checks against the machine); 10**9 stays below 2**31, where
# jax's int32 step counter (without x64) would wrap; and at 20,000 steps/s, faster than this
# project measures, it is 14 hours of training, 5,000 times the lecture's 200,000 steps.
MAX_STEP = 10**9
READ_CHUNK = 2**20  # arrays are read in 1 MiB pieces straight into place (no second copy)

END_RECORD_FORMAT = "<4s4H2LH"  # the zip end-of-central-directory record (APPNOTE 4.3.16)
END_RECORD_SIZE = struct.calcsize(END_RECORD_FORMAT)
END_RECORD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_LOCATOR_SIZE = 20
LOCAL_HEADER_SIZE = 30  # fixed part of a member's local header, before its name and extra
NPY_SUFFIX = ".npy"
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


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint file for ``path``: ``path/checkpoint.npz`` if ``path`` is a directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


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


def _temp_prefix(path: Path) -> str:
    """Temporary files for ``path`` are ``.<name>.<random>.tmp`` beside it (``<random>`` starts
    with the writer's pid, so a live writer's file is never taken for a stale one)."""
    return f".{path.name}."


def _writer_alive(middle: str) -> bool:
    """Whether the process that named a temporary file ``<pid>.<random>`` is still running.

    Files without a pid (older jaxninja), this process's own (its writes are not concurrent)
    and those of a finished process count as stale. Only POSIX can ask safely (``os.kill`` with
    signal 0 checks existence there; on Windows it would terminate the process).
    """
    pid_text = middle.split(".", 1)[0]
    if os.name != "posix" or not pid_text.isdigit() or len(pid_text) > 10:
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed :func:`write_atomic` of ``path`` left beside it.

    Only regular files named ``.<name>.*.tmp`` in ``path``'s folder, whose writer is not
    running; anything else (directories, links, other names, unreadable folders) is left alone.
    Returns the files removed.
    """
    path = Path(path)
    prefix = _temp_prefix(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _writer_alive(name[len(prefix) : -len(".tmp")]):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def write_atomic(
    path: str | os.PathLike, write: Callable[[IO[bytes]], object], what: str = "file"
) -> None:
    """``write(f)`` into a temporary file beside ``path``, flush, fsync, rename over ``path``,
    fsync the folder: a crash leaves the old file or the new one, never half of either.

    On failure the temporary file is removed, a previous file at ``path`` is untouched, and the
    error is a :class:`CheckpointError` naming the file. The mode follows the umask. Temporary
    files of earlier, killed writes of ``path`` are removed first (:func:`remove_stale_temps`).
    """
    path = Path(path)
    folder = path.parent
    tmp_name = None
    remove_stale_temps(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=folder
        )
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


def _open_checkpoint(path: Path, what: str = "checkpoint") -> IO[bytes]:
    """``path`` opened for reading if it is a regular file (never blocks on a FIFO); errors
    call it a ``what``."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    except NotRegularFile as err:
        raise CheckpointError(f"{path}: is {err.kind}, not a {what} file") from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise CheckpointError(f"{path}: cannot read ({reason})") from None


def _check_end_record(path: Path, f: IO[bytes]) -> None:
    """The archive ends in a plain end-of-central-directory record whose directory is small.

    numpy writes no archive comment and no ZIP64 end record (its archives are far below 4 GiB);
    requiring exactly that means zipfile reads this very record, so the bound on the directory
    size holds for what zipfile then parses (a ZipInfo per 46 bytes of directory).
    """
    size = os.fstat(f.fileno()).st_size
    if size < END_RECORD_SIZE + len(ZIP_MAGIC):
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (too short for a zip)")
    f.seek(max(0, size - END_RECORD_SIZE - ZIP64_LOCATOR_SIZE))
    tail = f.read()
    record = tail[-END_RECORD_SIZE:]
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment = struct.unpack(
        END_RECORD_FORMAT, record
    )
    if sig != END_RECORD_SIG or comment != 0:
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint (the archive does not end in a "
            f"comment-free end-of-directory record)"
        )
    if tail[-END_RECORD_SIZE - ZIP64_LOCATOR_SIZE :][:4] == ZIP64_LOCATOR_SIG:
        raise CheckpointError(f"{path}: ZIP64 archives are not read (a checkpoint is < 2 GiB)")
    if disk or cd_disk or n_disk != n_total:
        raise CheckpointError(f"{path}: multi-disk archives are not read")
    if n_total > MAX_MEMBERS or cd_size > MAX_DIRECTORY_BYTES:
        raise CheckpointError(
            f"{path}: the archive lists {n_total} members in {cd_size:,} bytes of directory; "
            f"a checkpoint has at most {MAX_MEMBERS} in {MAX_DIRECTORY_BYTES:,}"
        )
    if cd_offset + cd_size != size - END_RECORD_SIZE:  # also: no data prepended to the archive
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint (the directory does not end where the "
            f"end record starts)"
        )
    f.seek(0)


def _member_limit(key: str, max_bytes: int) -> int:
    """The most bytes member ``key``.npy may hold, uncompressed (header included)."""
    if key in TEXT_KEYS:
        return MAX_TEXT_BYTES + MAX_NPY_HEADER + NPY_PREFIX
    if key in SMALL_KEYS:
        return MAX_SMALL_BYTES
    return max_bytes


def _check_directory(
    path: Path, infos: list[zipfile.ZipInfo], cd_start: int, max_bytes: int
) -> list[str]:
    """Every member is a known ``.npy``, stored or deflated, within its size limits (all
    together within ``max_bytes``), not overlapping another; all from the zip directory, before
    a byte of any member is read. Returns the array names in archive order."""
    for info in infos:
        if not info.filename.endswith(NPY_SUFFIX):
            raise CheckpointError(f"{path}: member {info.filename!r} is not a numpy array")
    names = [info.filename.removesuffix(NPY_SUFFIX) for info in infos]
    if "format_version" not in names:
        raise CheckpointError(f"{path}: not a jaxninja checkpoint (no format_version)")
    unexpected = sorted(set(names) - KNOWN_KEYS)
    if unexpected:
        shown = ", ".join(repr(key) for key in unexpected)  # repr: a name is stranger's text
        raise CheckpointError(f"{path}: unexpected array(s) {shown}")
    twice = sorted({key for key in names if names.count(key) > 1})
    if twice:
        shown = ", ".join(repr(key) for key in twice)
        raise CheckpointError(f"{path}: array(s) {shown} appear twice in the archive")
    for info, key in zip(infos, names, strict=True):
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{path}: member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(
                f"{path}: member {info.filename!r} uses compression method "
                f"{info.compress_type}; only stored and deflated (np.savez_compressed) are read"
            )
        limit = _member_limit(key, max_bytes)
        if info.file_size > limit:
            raise CheckpointError(
                f"{path}: member {info.filename!r} holds {info.file_size:,} bytes, more than "
                f"the {limit:,} a checkpoint's {key} may"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise CheckpointError(
                f"{path}: truncated or corrupt checkpoint (stored member {info.filename!r} "
                f"has {info.compress_size:,} bytes for {info.file_size:,})"
            )
        ratio_bound = max(RATIO_FLOOR, MAX_RATIO * info.compress_size)
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > ratio_bound:
            raise CheckpointError(
                f"{path}: member {info.filename!r} would inflate {info.compress_size:,} bytes "
                f"to {info.file_size:,} (over {MAX_RATIO}:1); refusing a possible zip bomb"
            )
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise CheckpointError(
            f"{path}: the arrays hold {total:,} bytes, more than the {max_bytes:,}-byte "
            f"limit for a checkpoint"
        )
    _check_no_overlap(path, infos, cd_start)
    return names


def _check_no_overlap(path: Path, infos: list[zipfile.ZipInfo], cd_start: int) -> None:
    """Members lie one after another before the directory (overlapping members are how small
    zip bombs reuse one compressed block many times)."""
    spans = sorted(
        (
            info.header_offset,
            info.header_offset + LOCAL_HEADER_SIZE + len(info.orig_filename) + info.compress_size,
            info.filename,
        )
        for info in infos
    )
    ends = [start for start, _, _ in spans[1:]] + [cd_start]
    for (_, end, name), limit in zip(spans, ends, strict=True):
        if end > limit:
            raise CheckpointError(
                f"{path}: truncated or corrupt checkpoint (member {name!r} overlaps what follows)"
            )


def _read_npy_header(path: Path, name: str, f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype from a member's ``.npy`` header, which must be short, version 1 or
    2, C order, and a plain native number type (numpy parses it, from a bounded copy)."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise CheckpointError(f"{path}: array {name!r} has .npy format version {version}")
    length_size = 2 if version == (1, 0) else 4
    length_bytes = f.read(length_size)
    length = int.from_bytes(length_bytes, "little") if len(length_bytes) == length_size else -1
    if not 0 <= length <= MAX_NPY_HEADER:
        raise CheckpointError(
            f"{path}: array {name!r} has a {length:,}-byte .npy header (at most "
            f"{MAX_NPY_HEADER:,}: a plain array's header is under 200 bytes)"
        )
    header = io.BytesIO(length_bytes + f.read(length))
    read = np.lib.format.read_array_header_1_0
    if version == (2, 0):
        read = np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(header, max_header_size=MAX_NPY_HEADER)
    if dtype.hasobject:
        raise CheckpointError(
            f"{path}: array {name!r} is a pickled object array; refusing "
            f"to load it (a checkpoint holds plain data only)"
        )
    if fortran_order:
        raise CheckpointError(f"{path}: array {name!r} is in Fortran order (jaxninja writes C)")
    if dtype.kind not in "biuf" or dtype.fields is not None or not dtype.isnative:
        raise CheckpointError(
            f"{path}: array {name!r} has dtype {dtype.str!r}; a checkpoint holds plain "
            f"native-endian numbers"
        )
    if len(shape) > MAX_NDIM or any(n < 0 for n in shape):
        raise CheckpointError(f"{path}: array {name!r} has an impossible shape {shape}")
    return shape, dtype


def _read_npy_data(path: Path, name: str, f: IO[bytes], size: int) -> np.ndarray:
    """The array of the ``.npy`` stream ``f`` of ``size`` bytes: the header's shape x itemsize
    must be exactly ``size`` less the header; then that many bytes are read in chunks straight
    into the array (no second copy), and the stream must end there."""
    shape, dtype = _read_npy_header(path, name, f)
    nbytes = math.prod(shape) * dtype.itemsize
    room = size - f.tell()
    if nbytes != room:
        raise CheckpointError(
            f"{path}: array {name!r} claims shape {shape} of {dtype.str} ({nbytes:,} "
            f"bytes) but its member holds {room:,} bytes after the header"
        )
    arr = np.empty(shape, dtype)
    view = memoryview(arr.reshape(-1).view(np.uint8))
    done = 0
    while done < nbytes:
        chunk = f.read(min(READ_CHUNK, nbytes - done))
        if not chunk:
            raise CheckpointError(
                f"{path}: truncated or corrupt checkpoint (array {name!r} ends early)"
            )
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    if f.read(1):  # for a zip member this also makes zipfile check the CRC
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({name!r} too long)")
    return arr


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One member as an array, its size taken from the zip directory (see _read_npy_data)."""
    with zf.open(info) as f:
        return _read_npy_data(path, info.filename.removesuffix(NPY_SUFFIX), f, info.file_size)


def read_npy(path: str | os.PathLike, max_bytes: int) -> np.ndarray:
    """A plain ``.npy`` file (e.g. ``losses.npy`` beside a checkpoint) read as hostile input:
    a regular file of at most ``max_bytes``, checked like a checkpoint's members (bounded
    header, plain native dtype, shape x itemsize equal to the file's size). Any failure is a
    one-line :class:`CheckpointError` naming the file."""
    path = Path(path)
    with _open_checkpoint(path, ".npy") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise CheckpointError(f"{path}: {size:,} bytes, more than the {max_bytes:,} expected")
        try:
            with warnings.catch_warnings():  # as in _read_arrays
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", UserWarning)
                return _read_npy_data(path, path.stem, f, size)
        except CheckpointError:
            raise
        except ValueError as err:  # numpy's header checks
            raise CheckpointError(f"{path}: corrupt .npy file ({_first_line(err)})") from None
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
        except Exception as err:  # any other way a hostile file can fail numpy
            reason = f"{type(err).__name__}: {_first_line(err)}"
            raise CheckpointError(f"{path}: corrupt .npy file ({reason})") from None


def _read_arrays(path: Path, max_bytes: int = MAX_TOTAL_BYTES) -> dict[str, np.ndarray]:
    """Every array of the checkpoint archive at ``path``, bounded in memory and time.

    Sizes come from the zip directory and are checked (see the module docstring) before any
    array is read; each array is parsed here with numpy's header readers, never unpickled.
    Anything else that goes wrong in a stranger's file is one CheckpointError line.
    """
    arrays: dict[str, np.ndarray] = {}
    with _open_checkpoint(path) as f:
        magic = f.read(len(ZIP_MAGIC))
        if magic != ZIP_MAGIC:
            what = "an empty file" if not magic else "not an .npz archive"
            raise CheckpointError(f"{path}: not a jaxninja checkpoint ({what})")
        try:
            _check_end_record(path, f)
            with warnings.catch_warnings():  # nothing a stranger's file triggers reaches stderr
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", UserWarning)  # numpy's "Python 2 header" fallback
                with zipfile.ZipFile(f) as zf:
                    infos = zf.infolist()
                    _check_directory(path, infos, zf.start_dir, max_bytes)
                    for info in infos:
                        arrays[info.filename.removesuffix(NPY_SUFFIX)] = _read_member(
                            path, zf, info
                        )
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, EOFError, zlib.error) as err:
            reason = _first_line(err) or type(err).__name__
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
        except ValueError as err:  # numpy's header checks
            raise CheckpointError(f"{path}: corrupt checkpoint ({_first_line(err)})") from None
        except NotImplementedError as err:  # zipfile: a zip version, flag or feature it lacks
            raise CheckpointError(
                f"{path}: corrupt checkpoint (uses a zip feature not read: {_first_line(err)})"
            ) from None
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
        except Exception as err:  # any other way a hostile archive can fail zipfile or numpy
            reason = f"{type(err).__name__}: {_first_line(err)}"
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    return arrays


def _first_line(err: BaseException) -> str:
    """An exception's message cut to one line (the CLI promises one-line errors)."""
    lines = str(err).splitlines()
    return lines[0] if lines else ""


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
        raise CheckpointError(f"{path}: {key} is not valid JSON ({_first_line(err)})") from None


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
    the problem. The configuration's values are not validated here (that is settings' job).
    """
    if Path(path).is_dir() and not checkpoint_file(path).exists():
        raise CheckpointError(f"{path}: is a directory without a {CHECKPOINT_NAME}")
    path = checkpoint_file(path)
    arrays = _read_arrays(path, min(max_bytes, MAX_TOTAL_BYTES))
    version = _check_version(path, arrays)
    _check_keys(path, arrays, version)
    _check_checksum(path, arrays)
    vocab = _vocab(path, arrays)
    config = _json_value(path, arrays, "config_json")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config_json should be a JSON object")
    _check_shapes(path, arrays, vocab, config)
    _check_expected(path, vocab, config, expect_vocab, expect_config)
    step = _step(path, arrays)
    rng_key = _rng_key(path, arrays)
    data_hash = _data_hash(path, arrays)
    params = Params(*(arrays[key] for key in PARAM_KEYS))
    bn_stats = BNStats(*(arrays[key] for key in BN_KEYS)) if BN_KEYS[0] in arrays else None
    return Checkpoint(params, bn_stats, vocab, config, step, rng_key, data_hash)


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
        f"{dataset.source} (hash {dataset.data_hash[:12]}); pass --allow-other-data to "
        f"resume anyway"
    )
