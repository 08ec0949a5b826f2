"""A checkpoint is input from a stranger: every bad file is one CheckpointError line, reading is
bounded in memory and time, and format version 2 records which words a run was trained on."""

from __future__ import annotations

import io
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from jaxninja.data import load_dataset, words_hash
from jaxninja.errors import CheckpointError
from jaxninja.io import checkpoint as ck
from jaxninja.io import safe_npz
from jaxninja.io.checkpoint import check_same_data, load_checkpoint, save_checkpoint
from tests import helpers
from tests.helpers import ROOT, assert_same, finishes, make_checkpoint, resealed, write_raw

HASH = words_hash(["emma", "ava"])
# Refusing a forged file allocates almost nothing; 4 MiB is room for zipfile's and numpy's own
# buffers, and far below the gigabytes the forged sizes ask for.
REFUSAL_MEMORY = 4 * 2**20


# ------------------------------------------------------------------------------ helpers


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_raw(header: str | bytes, data: bytes, version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy member with exactly this header text (padded as numpy pads), version and data."""
    text = header.encode("latin-1") if isinstance(header, str) else header
    size = 2 if version == (1, 0) else 4
    pad = -(6 + 2 + size + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes(version) + len(text).to_bytes(size, "little") + text + data


def members(ckpt=None, **replace: bytes) -> dict[str, bytes]:
    """Member name -> bytes of a good checkpoint, with some members' bytes replaced."""
    arrays = ck.to_arrays(ckpt if ckpt is not None else make_checkpoint())
    out = {f"{key}.npy": npy(arr) for key, arr in arrays.items()}
    return out | {f"{key}.npy": data for key, data in replace.items()}


def write_zip(path: Path, content: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in content.items():
            zf.writestr(name, data)
    return path.read_bytes()


def central_entries(data: bytes) -> dict[str, int]:
    """Where each member's central directory entry starts (APPNOTE 4.3.12: 46 fixed bytes, then
    name, extra, comment)."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    pos, out = zf.start_dir, {}
    for info in zf.infolist():
        assert data[pos : pos + 4] == b"PK\x01\x02"
        n, m, k = struct.unpack("<3H", data[pos + 28 : pos + 34])
        out[info.filename] = pos
        pos += 46 + n + m + k
    return out


def patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


refused = partial(helpers.refused, CheckpointError, load_checkpoint)


def refused_lean(path: Path, match: str) -> str:
    """Refused as :func:`refused` is, and with at most REFUSAL_MEMORY allocated meanwhile."""
    tracemalloc.start()
    try:
        message = refused(path, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < REFUSAL_MEMORY, f"refusing took {peak:,} bytes"
    return message


# ------------------------------------------------------------------------------ not a file


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_character_device_is_not_read() -> None:
    refused(Path("/dev/zero"), "/dev/zero: is a character device, not a checkpoint file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "checkpoint.npz"
    os.mkfifo(fifo)
    err = finishes(load_checkpoint, tmp_path)
    assert isinstance(err, CheckpointError) and "is a FIFO (named pipe)" in str(err)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")
def test_socket_is_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "c.npz"))
        refused(tmp_path / "c.npz", "is a socket, not a checkpoint file")


# ------------------------------------------------------------------------------ the zip level


def test_compressed_checkpoint_is_read(tmp_path: Path) -> None:
    """np.savez_compressed of a checkpoint's arrays is a valid checkpoint (deflate is read)."""
    good = make_checkpoint()
    with open(tmp_path / "c.npz", "wb") as f:
        np.savez_compressed(f, **ck.to_arrays(good))
    assert_same(load_checkpoint(tmp_path / "c.npz"), good)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_other_compression_methods_are_refused(tmp_path: Path, method: int) -> None:
    write_zip(tmp_path / "c.npz", members(), method)
    refused(tmp_path / "c.npz", f"compression method {method}; only stored and deflated")


def test_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    """16 MiB of zeros deflate ~1000:1; refused from the directory's sizes, nothing inflated."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4194304,), }"
    bomb = npy_raw(header, bytes(16 * 2**20))
    write_zip(tmp_path / "c.npz", members(**{"params.W1": bomb}), zipfile.ZIP_DEFLATED)
    start = time.perf_counter()
    refused_lean(tmp_path / "c.npz", r"'params.W1.npy' would inflate .*over 100:1.*zip bomb")
    assert time.perf_counter() - start < 1.0  # inflating would take ~0.1 s; refusing, ~1 ms


def test_member_over_its_own_limit(tmp_path: Path) -> None:
    """A JSON member may hold at most MAX_TEXT_BYTES, however small the rest of the file is:
    from the directory when its member is larger than that plus a header, else once read."""
    big = np.zeros(ck.MAX_TEXT_BYTES + safe_npz.MAX_NPY_HEADER + safe_npz.NPY_PREFIX + 1, np.uint8)
    write_zip(tmp_path / "c.npz", members(**{"config_json": npy(big)}))
    refused_lean(tmp_path / "c.npz", r"'config_json.npy' holds 1,049,\d+ bytes, more than the")
    write_arrays(tmp_path / "c.npz", config_json=np.zeros(ck.MAX_TEXT_BYTES + 1, np.uint8))
    refused(tmp_path / "c.npz", "config_json is 1,048,577 bytes .at most 1,048,576.")


def test_total_over_the_limit(tmp_path: Path) -> None:
    """Members each within limits but too many bytes together (max_bytes lowered to test it;
    the caller may lower it to the machine's memory, never raise it)."""
    content = members()
    sizes = sorted(len(data) for data in content.values())
    write_zip(tmp_path / "c.npz", content)
    limit = (sizes[-1] + sum(sizes)) // 2  # above the largest member, below all of them
    with pytest.raises(CheckpointError, match=f"more than the {limit:,}-byte limit"):
        load_checkpoint(tmp_path / "c.npz", max_bytes=limit)
    assert load_checkpoint(tmp_path / "c.npz", max_bytes=sum(sizes)).step == 1234
    assert load_checkpoint(tmp_path / "c.npz", max_bytes=10**30).step == 1234  # capped, no error


def test_forged_directory_sizes(tmp_path: Path) -> None:
    """A stored member whose directory entry claims 3 GiB: refused without reading it."""
    data = write_zip(tmp_path / "c.npz", members())
    at = central_entries(data)["params.W1.npy"]
    (tmp_path / "c.npz").write_bytes(patched(data, at + 24, "<L", 3 * 2**30))
    refused_lean(tmp_path / "c.npz", "'params.W1.npy' holds 3,221,225,472 bytes, more than")
    stored = patched(data, at + 24, "<L", 1000)  # small, but not its stored size
    (tmp_path / "c.npz").write_bytes(stored)
    refused(tmp_path / "c.npz", "stored member 'params.W1.npy' has .* bytes for 1,000")


def test_wrong_crc(tmp_path: Path) -> None:
    data = write_zip(tmp_path / "c.npz", members())
    at = central_entries(data)["params.b1.npy"]
    (tmp_path / "c.npz").write_bytes(patched(data, at + 16, "<L", 0x12345678))
    refused(tmp_path / "c.npz", r"truncated or corrupt checkpoint \(Bad CRC-32 for file")


def test_damaged_member_header(tmp_path: Path) -> None:
    data = write_zip(tmp_path / "c.npz", members())
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("params.W2.npy")
    (tmp_path / "c.npz").write_bytes(patched(data, info.header_offset, "<L", 0x0403_5858))
    refused(tmp_path / "c.npz", "truncated or corrupt checkpoint .Bad magic number for file")
    renamed = bytearray(data)  # the local header names another member than the directory
    renamed[info.header_offset + 30] ^= 0x20
    (tmp_path / "c.npz").write_bytes(bytes(renamed))
    refused(tmp_path / "c.npz", "File name in directory 'params.W2.npy' and header")


def test_encrypted_member(tmp_path: Path) -> None:
    data = write_zip(tmp_path / "c.npz", members())
    at = central_entries(data)["step.npy"]
    (tmp_path / "c.npz").write_bytes(patched(data, at + 8, "<H", 0x1))
    refused(tmp_path / "c.npz", "member 'step.npy' is encrypted")


def test_zip_feature_zipfile_lacks(tmp_path: Path) -> None:
    """Flag bit 5 (compressed patched data) makes zipfile raise NotImplementedError."""
    data = write_zip(tmp_path / "c.npz", members())
    at = central_entries(data)["rng_key.npy"]
    (tmp_path / "c.npz").write_bytes(patched(data, at + 8, "<H", 0x20))
    refused(tmp_path / "c.npz", r"uses a zip feature not read: compressed patched data")


def test_overlapping_members(tmp_path: Path) -> None:
    """Two directory entries pointing at one member's data (how small zip bombs multiply)."""
    data = write_zip(tmp_path / "c.npz", members())
    entries = central_entries(data)
    offset = zipfile.ZipFile(io.BytesIO(data)).getinfo("params.C.npy").header_offset
    (tmp_path / "c.npz").write_bytes(patched(data, entries["params.W1.npy"] + 42, "<L", offset))
    refused(tmp_path / "c.npz", "overlaps what follows")


def test_duplicate_member(tmp_path: Path) -> None:
    content = list(members().items()) + [("step.npy", npy(np.array(7, np.int64)))]
    with warnings.catch_warnings(), zipfile.ZipFile(tmp_path / "c.npz", "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, as it should
        for name, data in content:
            zf.writestr(name, data)
    refused(tmp_path / "c.npz", r"array\(s\) 'step' appear twice")


def test_unknown_member_names_are_quoted(tmp_path: Path) -> None:
    """A stranger's member name is shown with repr, so it cannot put escapes on a terminal."""
    write_zip(tmp_path / "c.npz", members() | {"\x1b[31mred.npy": npy(np.zeros(1))})
    message = refused(tmp_path / "c.npz", "unexpected array")
    assert "\x1b" not in message and "'\\x1b[31mred'" in message


def test_too_many_members(tmp_path: Path) -> None:
    extra = {f"x{i}.npy": b"" for i in range(safe_npz.MAX_MEMBERS)}
    write_zip(tmp_path / "c.npz", members() | extra)
    refused(tmp_path / "c.npz", f"lists {16 + safe_npz.MAX_MEMBERS - 1} members")


def test_archive_comment_and_trailing_bytes(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as zf:
        for name, data in members().items():
            zf.writestr(name, data)
        zf.comment = b"hello"
    refused(tmp_path / "c.npz", "does not end in a comment-free end-of-directory record")
    save_checkpoint(tmp_path / "d.npz", make_checkpoint())
    with open(tmp_path / "d.npz", "ab") as f:
        f.write(b"\0" * 100)
    refused(tmp_path / "d.npz", "does not end in a comment-free end-of-directory record")


def test_zip64_end_record_is_refused(tmp_path: Path) -> None:
    """A ZIP64 locator before the end record would make zipfile use other counts and sizes."""
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    data = bytearray((tmp_path / "c.npz").read_bytes())
    data[-42:-38] = safe_npz.ZIP64_LOCATOR_SIG
    (tmp_path / "c.npz").write_bytes(bytes(data))
    refused(tmp_path / "c.npz", "ZIP64 archives are not read")


# ------------------------------------------------------------------------------ the .npy level


@pytest.mark.parametrize(
    "header, match",
    [
        ("{'descr': '<f4', 'fortran_order': True, 'shape': (27, 4), }", "Fortran order"),
        ("{'descr': '>f4', 'fortran_order': False, 'shape': (27, 4), }", "dtype '>f4'"),
        ("{'descr': '<c8', 'fortran_order': False, 'shape': (27, 2), }", "dtype '<c8'"),
        ("{'descr': '|V4', 'fortran_order': False, 'shape': (27, 4), }", "dtype '|V4'"),
        ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (27, 4), }", "dtype"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (27, 3), }", r"claims shape \(27, 3\)"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (28, 4), }", r"claims shape \(28, 4\)"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-27, -4), }", "impossible shape"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
            "impossible shape",
        ),
        ("{'descr': '<f4', 'fortran_order': False}", "corrupt checkpoint .Header does not"),
        ("[" * 150 + "]" * 150, "corrupt checkpoint"),  # deep nesting in the header literal
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (27, 4), 'x': 1}", "corrupt"),
        ("__import__('os').system('touch /tmp/pwned')", "corrupt checkpoint"),  # not evaluated
        # Python 2 longs: numpy would parse them after a warning; the warning refuses it instead
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (27L, 4L), }", "UserWarning"),
    ],
)
def test_odd_npy_headers(tmp_path: Path, header: str, match: str) -> None:
    """params.C of a good checkpoint (27 x 4 float32 = 432 bytes) under a bad header."""
    data = ck.to_arrays(make_checkpoint())["params.C"].tobytes()
    write_zip(tmp_path / "c.npz", members(**{"params.C": npy_raw(header, data)}))
    message = refused(tmp_path / "c.npz", match)
    assert "params.C" in message or "Header" in message or "header" in message


def test_npy_versions_and_header_length(tmp_path: Path) -> None:
    good = ck.to_arrays(make_checkpoint())["params.b1"]
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }"
    write_zip(tmp_path / "c.npz", members(**{"params.b1": npy_raw(header, good.tobytes(), (2, 0))}))
    assert load_checkpoint(tmp_path / "c.npz").params.b1.tobytes() == good.tobytes()  # v2 is read
    write_zip(tmp_path / "c.npz", members(**{"params.b1": npy_raw(header, good.tobytes(), (3, 0))}))
    refused(tmp_path / "c.npz", r".npy format version \(3, 0\)")
    long_header = header[:-1] + " " * 5000 + "}"
    write_zip(tmp_path / "c.npz", members(**{"params.b1": npy_raw(long_header, good.tobytes())}))
    refused(tmp_path / "c.npz", r"'params.b1' has a 5,\d+-byte .npy header")


def test_member_that_is_not_npy(tmp_path: Path) -> None:
    write_zip(tmp_path / "c.npz", members(**{"step": b"PK\x03\x04 not an array at all"}))
    refused(tmp_path / "c.npz", "corrupt checkpoint .the magic string is not correct")


def test_huge_shape_with_little_data_allocates_nothing(tmp_path: Path) -> None:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    write_zip(tmp_path / "c.npz", members(**{"params.W1": npy_raw(header, bytes(64))}))
    refused_lean(tmp_path / "c.npz", r"claims shape \(1000000, 1000000\) of <f8")


# ------------------------------------------------------------------------------ JSON, step, key


def write_arrays(path: Path, **replace: np.ndarray) -> None:
    """A checkpoint with some arrays replaced and the checksum recomputed (a forger can)."""
    write_raw(path, resealed(ck.to_arrays(make_checkpoint()) | replace))


def text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-8"), np.uint8)


@pytest.mark.parametrize(
    "config, match",
    [
        ("[" * 100_000 + "]" * 100_000, "config_json nests deeper than 16 levels"),
        ('{"a": ' * 17 + "1" + "}" * 17, "nests deeper than 16"),
        ('{"lr": NaN}', r"not valid JSON \(NaN is not a JSON number\)"),
        ('{"lr": -Infinity}', "not valid JSON"),
        ('{"seed": ' + "9" * 5000 + "}", "not valid JSON"),  # over Python's int digit limit
        ('{"a": 1', "not valid JSON"),
        ("[1, 2]", "config_json should be a JSON object"),
    ],
)
def test_hostile_json(tmp_path: Path, config: str, match: str) -> None:
    write_arrays(tmp_path / "c.npz", config_json=text(config))
    start = time.perf_counter()
    refused(tmp_path / "c.npz", match)
    assert time.perf_counter() - start < 1.0  # the depth scan is linear and stops early


def test_brackets_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    config = make_checkpoint().config | {"data": '[[[[[[[[[[[[[[[[[[[[ \\" {{{{{{{{{{{{{{{{{{{{'}
    save_checkpoint(tmp_path / "c.npz", make_checkpoint()._replace(config=config))
    assert load_checkpoint(tmp_path / "c.npz").config["data"] == config["data"]


def test_json_depth_scanner() -> None:
    assert ck._json_depth(b'{"a": [1, {"b": "]]]"}], "c": "\\\\"}', 16) == 3
    assert ck._json_depth(b'"\\"[[["', 16) == 0  # an escaped quote does not end the string
    assert ck._json_depth(b"[" * 10**6, 16) == 17  # stops counting past the limit


@pytest.mark.parametrize("chars", ["ab\x1b", "ab\u200b", "ab\ud800", "a\tb"])
def test_vocabulary_of_characters_no_word_holds(tmp_path: Path, chars: str) -> None:
    """A stranger's vocabulary could print terminal escapes or invisible text in samples."""
    import json

    vocab = np.frombuffer(json.dumps({"chars": chars}).encode(), np.uint8)
    write_arrays(tmp_path / "c.npz", vocab_json=vocab)
    refused(tmp_path / "c.npz", "vocabulary (contains|is not)")


@pytest.mark.parametrize("step", [ck.MAX_STEP + 1, 2**31 - 1, 2**63 - 1])
def test_step_beyond_the_bound(tmp_path: Path, step: int) -> None:
    write_arrays(tmp_path / "c.npz", step=np.array(step, np.int64))
    refused(tmp_path / "c.npz", f"step {step:,} is outside 0..1,000,000,000")


def test_step_at_the_bound_loads_and_beyond_is_not_saved(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.npz", make_checkpoint()._replace(step=ck.MAX_STEP))
    assert load_checkpoint(tmp_path / "c.npz").step == ck.MAX_STEP
    with pytest.raises(CheckpointError, match="step 1000000001 is outside"):
        save_checkpoint(tmp_path / "d.npz", make_checkpoint()._replace(step=ck.MAX_STEP + 1))
    assert not (tmp_path / "d.npz").exists()


def test_nan_config_is_not_saved(tmp_path: Path) -> None:
    config = make_checkpoint().config | {"lr": float("nan")}
    with pytest.raises(CheckpointError, match="not JSON-able"):
        save_checkpoint(tmp_path / "c.npz", make_checkpoint()._replace(config=config))


@pytest.mark.parametrize("key", [np.zeros(2, np.float32), np.zeros(2, bool)])
def test_rng_key_of_another_dtype(tmp_path: Path, key: np.ndarray) -> None:
    write_arrays(tmp_path / "c.npz", rng_key=key)
    refused(tmp_path / "c.npz", "rng_key .* is not a jax PRNG key")


# ------------------------------------------------------------------------------ data hash


def test_version_2_records_the_data_hash(tmp_path: Path) -> None:
    saved = make_checkpoint()._replace(data_hash=HASH)
    save_checkpoint(tmp_path / "c.npz", saved)
    loaded = load_checkpoint(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as archive:  # the lecture's checkpoints stay version 2
        assert loaded.data_hash == HASH and int(archive["format_version"]) == 2
    assert_same(loaded, saved)


def test_version_1_still_loads_without_a_hash(tmp_path: Path) -> None:
    write_arrays(tmp_path / "c.npz", format_version=np.array(1, np.int64))
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert loaded.data_hash is None
    assert_same(loaded, make_checkpoint())


def test_version_1_with_a_hash_is_not_version_1(tmp_path: Path) -> None:
    write_arrays(tmp_path / "c.npz", format_version=np.array(1, np.int64), data_hash=text(HASH))
    refused(tmp_path / "c.npz", "unexpected array.*data_hash")


@pytest.mark.parametrize("bad", [HASH[:-1], HASH.upper(), HASH[:-1] + "g", ""])
def test_malformed_data_hash(tmp_path: Path, bad: str) -> None:
    write_arrays(tmp_path / "c.npz", data_hash=text(bad))
    refused(tmp_path / "c.npz", "data_hash should be 64 hex digits")
    with pytest.raises(CheckpointError, match="is not a SHA-256 hex"):
        save_checkpoint(tmp_path / "d.npz", make_checkpoint()._replace(data_hash=bad))


@pytest.fixture
def datasets(tmp_path: Path):
    """Two word lists with the same vocabulary (the case the hash exists for)."""
    words = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia"]
    (tmp_path / "a.txt").write_text("\n".join(words))
    (tmp_path / "b.txt").write_text("\n".join(reversed(words)))
    a, b = load_dataset(tmp_path / "a.txt"), load_dataset(tmp_path / "b.txt")
    assert a.vocab == b.vocab and a.data_hash != b.data_hash
    return a, b


def test_check_same_data(tmp_path: Path, datasets) -> None:
    a, b = datasets
    ckpt = make_checkpoint()._replace(data_hash=a.data_hash)
    path = tmp_path / "run"
    assert check_same_data(path, ckpt, a) is None
    with pytest.raises(CheckpointError) as info:
        check_same_data(path, ckpt, b)
    message = str(info.value)
    assert message.startswith(f"{path}: was trained on other data (hash {a.data_hash[:12]})")
    assert message.endswith("pass allow_other_data= to resume anyway") and "\n" not in message
    assert info.value.render(cli=True).endswith("pass --allow-other-data to resume anyway")
    note = check_same_data(path, ckpt, b, allow_other_data=True)
    assert note is not None and "other data" in note and b.source in note


def test_check_same_data_without_hashes(tmp_path: Path, datasets) -> None:
    a, _ = datasets
    note = check_same_data(tmp_path, make_checkpoint(), a)  # a version-1 checkpoint
    assert note is not None and "records no data hash (format version 1" in note
    note = check_same_data(
        tmp_path, make_checkpoint()._replace(data_hash=HASH), a._replace(data_hash="")
    )
    assert note is not None and "no data hash to compare" in note


# ------------------------------------------------------------------------------ stale temps


def test_stale_temporary_files_are_removed_at_the_next_save(tmp_path: Path) -> None:
    """Only ``.checkpoint.npz.*.tmp`` regular files of no running writer, only in that folder."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = done.stdout.strip()
    stale = [f".checkpoint.npz.{x}.tmp" for x in ("k2j3h4", f"{dead}.ab12", f"{os.getpid()}.x")]
    kept = [
        f".checkpoint.npz.{os.getppid()}.ab12.tmp",  # a live process may still be writing it
        ".losses.npy.ab12.tmp",  # another file's
        "checkpoint.npz.ab12.tmp",
        ".checkpoint.npz.ab12.tmp.bak",
        "sub/.checkpoint.npz.ab12.tmp",  # another folder
    ]
    (tmp_path / "sub").mkdir()
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"PK\x03\x04 half")
    (tmp_path / ".checkpoint.npz.dir.tmp").mkdir()
    (tmp_path / ".checkpoint.npz.link.tmp").symlink_to(tmp_path / "sub")
    save_checkpoint(tmp_path / "checkpoint.npz", make_checkpoint())
    assert not any((tmp_path / name).exists() for name in stale)
    assert all((tmp_path / name).exists() for name in kept)
    assert (tmp_path / ".checkpoint.npz.dir.tmp").is_dir()
    assert (tmp_path / ".checkpoint.npz.link.tmp").is_symlink()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_write_killed_midway_then_next_save_cleans_up(tmp_path: Path) -> None:
    """A real kill -9 in the middle of write_atomic leaves its temporary file; the next save of
    that checkpoint removes it and leaves exactly the checkpoint."""
    code = (
        "import os, signal, sys\n"
        "from jaxninja.io.atomic import write_atomic\n"
        "def write(f):\n"
        "    f.write(b'PK\\x03\\x04 half a checkpoint'); f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomic(sys.argv[1], write)\n"
    )
    target = tmp_path / ck.CHECKPOINT_NAME
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".checkpoint.npz.") and left[0].endswith(".tmp")
    save_checkpoint(target, make_checkpoint())
    assert [p.name for p in tmp_path.iterdir()] == [ck.CHECKPOINT_NAME]


# ------------------------------------------------------------------------------ fuzzing


# A load of this ~6 KB file takes ~5 ms; 2 s per case is a wide margin for a loaded machine and
# still far below what any unbounded read or inflate of the forged sizes would take.
CASE_LIMIT_S = 2.0


def structure(data: bytes) -> np.ndarray:
    """Offsets of an archive's structure rather than its array data: each member's local header
    with the start of its data (the .npy header, when stored), the directory and end record.
    Random flips mostly land in array data and are caught by the CRC; these reach the parsers."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    spans = [
        (i.header_offset, i.header_offset + 30 + len(i.filename) + 20 + 128) for i in zf.infolist()
    ]
    spans.append((zf.start_dir, len(data)))
    return np.concatenate([np.arange(start, min(end, len(data))) for start, end in spans])


def fuzz(tmp_path: Path, n_cases: int, seed: int) -> dict[str, int]:
    """``n_cases`` random damages of a real checkpoint, plain and compressed: a truncation, or
    1-3 flipped bytes (half of them in the archive's structure); each is refused in one line or
    loads identical to the original, within CASE_LIMIT_S."""
    rng = np.random.default_rng(seed)
    good = make_checkpoint()._replace(data_hash=HASH)
    save_checkpoint(tmp_path / "plain.npz", good)
    with open(tmp_path / "deflated.npz", "wb") as f:
        np.savez_compressed(f, **ck.to_arrays(good))
    outcomes = {"loaded": 0, "refused": 0}
    path = tmp_path / "c.npz"
    for source in ("plain.npz", "deflated.npz"):
        original = (tmp_path / source).read_bytes()
        targets = structure(original)
        for _ in range(n_cases):
            data = bytearray(original)
            if rng.random() < 0.25:
                data = data[: int(rng.integers(0, len(data)))]
            else:
                for _ in range(int(rng.integers(1, 4))):
                    at = rng.choice(targets) if rng.random() < 0.5 else rng.integers(0, len(data))
                    data[int(at)] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(data))
            start = time.perf_counter()
            try:
                loaded = load_checkpoint(path)
            except CheckpointError as err:
                assert "\n" not in str(err) and str(path) in str(err)
                outcomes["refused"] += 1
            else:
                assert_same(loaded, good)
                assert loaded.data_hash == HASH
                outcomes["loaded"] += 1
            assert time.perf_counter() - start < CASE_LIMIT_S
    return outcomes


def test_fuzz_flips_and_truncations(tmp_path: Path) -> None:
    """300 damaged plain and 300 damaged compressed checkpoints (~1 s); both outcomes occur,
    so the test exercises the loader and not only its first check."""
    outcomes = fuzz(tmp_path, 300, seed=12)
    assert outcomes["refused"] > 400 and outcomes["loaded"] > 0


@pytest.mark.slow
def test_fuzz_many(tmp_path: Path) -> None:
    """The same with 5,000 cases of each kind and another seed (~20 s)."""
    outcomes = fuzz(tmp_path, 5000, seed=2026)
    assert outcomes["refused"] > 7000 and outcomes["loaded"] > 0


# ------------------------------------------------------------------------------ plain .npy


def test_read_npy_reads_a_plain_array(tmp_path: Path) -> None:
    losses = np.linspace(3.3, 2.0, 1000, dtype=np.float32)
    np.save(tmp_path / "losses.npy", losses)
    assert safe_npz.read_npy(tmp_path / "losses.npy", 4 * 1000 + 4096).tobytes() == losses.tobytes()


def test_read_npy_refuses_what_load_losses_must_not_trust(tmp_path: Path) -> None:
    """losses.npy beside a checkpoint is a stranger's too: a forged 4 TiB header, a file over
    the expected size, a FIFO, a pickle; each one line, none allocating or hanging."""
    path = tmp_path / "losses.npy"
    path.write_bytes(npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2**40,), }", b""))
    with pytest.raises(CheckpointError, match="corrupt .npy file"):  # 2**40 is not a literal
        safe_npz.read_npy(path, 10**6)
    path.write_bytes(
        npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", b"")
    )
    with pytest.raises(CheckpointError, match=r"claims shape \(1099511627776,\)"):
        safe_npz.read_npy(path, 10**6)
    np.save(path, np.zeros(1000, np.float32))
    with pytest.raises(CheckpointError, match="losses.npy: 4,128 bytes, more than the 4,000"):
        safe_npz.read_npy(path, 4000)
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickled object array"):
        safe_npz.read_npy(path, 10**6)
    path.unlink()
    with pytest.raises(CheckpointError, match="losses.npy: no such .npy"):
        safe_npz.read_npy(path, 10**6)
    if hasattr(os, "mkfifo"):
        os.mkfifo(path)
        err = finishes(safe_npz.read_npy, path, 10**6)
        assert isinstance(
            err, CheckpointError
        ) and "is a FIFO (named pipe), not a .npy file" in str(err)
