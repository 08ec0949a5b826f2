"""Reading a stranger's ``.npz`` / ``.npy`` within stated bounds: one error line, never a bomb.

numpy's own loader trusts a file's sizes; these readers check them first. For an archive:

- only a regular file is opened (a FIFO cannot hang it, ``/dev/zero`` is not read);
- it must end in a plain end-of-directory record (no comment, no ZIP64) listing at most
  :data:`MAX_MEMBERS` members in :data:`MAX_DIRECTORY_BYTES` of directory;
- from the zip directory, before any member is read: each member is a known ``<name>.npy``
  (once), not encrypted, stored or deflated, within the limit its caller gives for it and all of
  them within a total, and no two overlapping; a deflated member may not inflate more than
  :data:`MAX_RATIO`:1 beyond :data:`RATIO_FLOOR` bytes (a zip bomb);
- each ``.npy`` header is at most :data:`MAX_NPY_HEADER` bytes, version 1 or 2, C order, a plain
  native number dtype, and its shape x itemsize must equal the member's size less the header;
  the data is then read in chunks into the array and the zip CRC checked.

Every failure is a one-line :class:`CheckpointError` naming the file (these files sit in run
folders; :mod:`jaxninja.io.checkpoint` is the main caller).
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np

from jaxninja.errors import CheckpointError, NotRegularFile
from jaxninja.io.files import open_regular

ZIP_MAGIC = b"PK\x03\x04"
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
READ_CHUNK = 2**20  # arrays are read in 1 MiB pieces straight into place (no second copy)

END_RECORD_FORMAT = "<4s4H2LH"  # the zip end-of-central-directory record (APPNOTE 4.3.16)
END_RECORD_SIZE = struct.calcsize(END_RECORD_FORMAT)
END_RECORD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_LOCATOR_SIZE = 20
LOCAL_HEADER_SIZE = 30  # fixed part of a member's local header, before its name and extra
NPY_SUFFIX = ".npy"


def open_file(path: Path, what: str = "checkpoint") -> IO[bytes]:
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


# A model file's checkpoint holds one array per parameter and statistic: part 5's WaveNet has
# 14; 4,096 is far beyond any character model, and bounds the zip directory a stranger sends.
MAX_MEMBERS = 4096


class ArchiveLayout(NamedTuple):
    """What an archive may hold: its array names, the one that marks it as ours (``required``),
    each array's size limit in bytes (header included) and the limit of all together."""

    known: frozenset[str] | Callable[[str], bool]  # the names, or a test of a name
    required: str
    limit_of: Callable[[str], int]
    max_bytes: int


def _check_directory(
    path: Path, infos: list[zipfile.ZipInfo], cd_start: int, layout: ArchiveLayout
) -> list[str]:
    """Every member is a known ``.npy``, stored or deflated, within its size limits (all
    together within the layout's ``max_bytes``), not overlapping another; all from the zip
    directory, before a byte of any member is read. Returns the array names in archive order."""
    for info in infos:
        if not info.filename.endswith(NPY_SUFFIX):
            raise CheckpointError(f"{path}: member {info.filename!r} is not a numpy array")
    names = [info.filename.removesuffix(NPY_SUFFIX) for info in infos]
    if layout.required not in names:
        raise CheckpointError(f"{path}: not a jaxninja checkpoint (no {layout.required})")
    if len(names) > MAX_MEMBERS:
        raise CheckpointError(f"{path}: {len(names):,} arrays (a checkpoint holds at most "
                              f"{MAX_MEMBERS:,})")  # fmt: skip
    known = layout.known
    unexpected = sorted(n for n in set(names) if not (known(n) if callable(known) else n in known))
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
        limit = layout.limit_of(key)
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
    if total > layout.max_bytes:
        raise CheckpointError(
            f"{path}: the arrays hold {total:,} bytes, more than the {layout.max_bytes:,}-byte "
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
    with open_file(path, ".npy") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise CheckpointError(f"{path}: {size:,} bytes, more than the {max_bytes:,} expected")
        try:
            with warnings.catch_warnings():  # as in read_archive
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", UserWarning)
                return _read_npy_data(path, path.stem, f, size)
        except CheckpointError:
            raise
        except ValueError as err:  # numpy's header checks
            raise CheckpointError(f"{path}: corrupt .npy file ({first_line(err)})") from None
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
        except Exception as err:  # any other way a hostile file can fail numpy
            reason = f"{type(err).__name__}: {first_line(err)}"
            raise CheckpointError(f"{path}: corrupt .npy file ({reason})") from None


def read_archive(path: Path, layout: ArchiveLayout) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path`` (a checkpoint), bounded in memory and time.

    Sizes come from the zip directory and are checked (see the module docstring) before any
    array is read; each array is parsed here with numpy's header readers, never unpickled.
    Anything else that goes wrong in a stranger's file is one CheckpointError line.
    """
    arrays: dict[str, np.ndarray] = {}
    with open_file(path) as f:
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
                    _check_directory(path, infos, zf.start_dir, layout)
                    for info in infos:
                        arrays[info.filename.removesuffix(NPY_SUFFIX)] = _read_member(
                            path, zf, info
                        )
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, EOFError, zlib.error) as err:
            reason = first_line(err) or type(err).__name__
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
        except ValueError as err:  # numpy's header checks
            raise CheckpointError(f"{path}: corrupt checkpoint ({first_line(err)})") from None
        except NotImplementedError as err:  # zipfile: a zip version, flag or feature it lacks
            raise CheckpointError(
                f"{path}: corrupt checkpoint (uses a zip feature not read: {first_line(err)})"
            ) from None
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
        except Exception as err:  # any other way a hostile archive can fail zipfile or numpy
            reason = f"{type(err).__name__}: {first_line(err)}"
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    return arrays


def first_line(err: BaseException) -> str:
    """An exception's message cut to one line (the CLI promises one-line errors)."""
    lines = str(err).splitlines()
    return lines[0] if lines else ""
