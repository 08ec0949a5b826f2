"""Checkpoints round-trip bit for bit, and every kind of bad file is refused with one clear line."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from jaxninja.data import Vocab
from jaxninja.errors import CheckpointError, ConfigError
from jaxninja.io import checkpoint as ck
from jaxninja.io.atomic import prepare_out_dir
from jaxninja.io.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tests import helpers
from tests.helpers import (
    SIZES,
    VOCAB,
    assert_same,
    make_checkpoint,
    names_setting,
    resealed,
    write_raw,
)

refused = partial(helpers.refused, CheckpointError, load_checkpoint)


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_bn", [True, False])
def test_round_trip_is_bit_exact(tmp_path: Path, dtype: str, with_bn: bool) -> None:
    saved = make_checkpoint(dtype, with_bn)
    save_checkpoint(tmp_path / "c.npz", saved)
    loaded = load_checkpoint(tmp_path / "c.npz", expect_vocab=VOCAB, expect_config=SIZES)
    assert_same(saved, loaded)
    assert os.listdir(tmp_path) == ["c.npz"]  # the temporary file was renamed, not left behind


def test_round_trip_of_jax_arrays_and_odd_vocabulary(tmp_path: Path) -> None:
    """Real jax parameters and a non-ASCII, mixed-case vocabulary survive unchanged."""
    import jax

    from jaxninja.lecture.model import init_params

    vocab = Vocab("ABabéøß李")
    params = init_params(
        jax.random.key(3), vocab.size, SIZES["n_embd"], SIZES["n_hidden"], SIZES["block_size"]
    )
    key_data = np.asarray(jax.random.key_data(jax.random.key(7)))
    saved = Checkpoint(params, None, vocab, dict(SIZES), 0, key_data)
    save_checkpoint(tmp_path / ck.CHECKPOINT_NAME, saved)
    loaded = load_checkpoint(tmp_path, expect_vocab=vocab)  # a directory holding checkpoint.npz
    assert loaded.vocab == vocab
    for x, y in zip(params, loaded.params, strict=True):
        assert np.asarray(x).tobytes() == y.tobytes()
    assert np.array_equal(jax.random.key_data(jax.random.wrap_key_data(loaded.rng_key)), key_data)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_file_mode_follows_umask(tmp_path: Path) -> None:
    """The temporary file's private 0600 mode is not what the user gets."""
    old = os.umask(0o027)
    try:
        save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o640


def test_same_checkpoint_same_bytes(tmp_path: Path) -> None:
    """Saving is deterministic, so two identical runs give byte-identical files."""
    save_checkpoint(tmp_path / "a.npz", make_checkpoint())
    save_checkpoint(tmp_path / "b.npz", make_checkpoint())
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_overwrite_replaces_previous(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.npz", make_checkpoint(seed=0))
    save_checkpoint(tmp_path / "c.npz", make_checkpoint(seed=1))
    assert_same(load_checkpoint(tmp_path / "c.npz"), make_checkpoint(seed=1))
    assert os.listdir(tmp_path) == ["c.npz"]


# ------------------------------------------------------------------------------ bad files


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.npz", "no such checkpoint")


def test_directory_without_checkpoint(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory without a checkpoint.npz")
    (tmp_path / ck.CHECKPOINT_NAME).mkdir()  # checkpoint.npz itself a directory
    refused(tmp_path / ck.CHECKPOINT_NAME, "is a directory without a checkpoint.npz")


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty file"),
        (b"emma\nolivia\n", "not an .npz archive"),
        (b"\x93NUMPY\x01\x00", "not an .npz archive"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / "c.npz").write_bytes(content)
    refused(tmp_path / "c.npz", match)


def test_a_plain_npz_is_not_a_checkpoint(tmp_path: Path) -> None:
    write_raw(tmp_path / "c.npz", {"weights": np.zeros(3)})
    refused(tmp_path / "c.npz", "no format_version")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated(tmp_path: Path, keep: float) -> None:
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(data[: int(len(data) * keep)])
    refused(tmp_path / "c.npz", "truncated or corrupt")


def test_flipped_byte_inside_an_array(tmp_path: Path) -> None:
    """A flipped bit in the data is caught, by the zip CRC or by our checksum."""
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    data = bytearray((tmp_path / "c.npz").read_bytes())
    data[len(data) // 3] ^= 0x01
    (tmp_path / "c.npz").write_bytes(bytes(data))
    refused(tmp_path / "c.npz", "corrupt")


def test_checksum_mismatch(tmp_path: Path) -> None:
    """An array changed after saving, in a well-formed archive, fails the SHA-256 check."""
    arrays = ck.to_arrays(make_checkpoint())
    arrays["params.W1"] = arrays["params.W1"].copy()
    arrays["params.W1"][0, 0] += 1.0
    write_raw(tmp_path / "c.npz", arrays)
    refused(tmp_path / "c.npz", "checksum mismatch")


def test_checksum_covers_dtype(tmp_path: Path) -> None:
    """Same bytes reinterpreted as another dtype must not pass."""
    arrays = ck.to_arrays(make_checkpoint())
    arrays["params.b1"] = arrays["params.b1"].view(np.int32)
    write_raw(tmp_path / "c.npz", arrays)
    refused(tmp_path / "c.npz", "checksum mismatch")


@pytest.mark.parametrize(
    "version, match",
    [
        (ck.FORMAT_VERSION + 1, f"format version {ck.FORMAT_VERSION + 1} is newer"),
        (0, "unknown format version 0"),
    ],
)
def test_format_version(tmp_path: Path, version: int, match: str) -> None:
    arrays = ck.to_arrays(make_checkpoint())
    arrays["format_version"] = np.array(version, dtype=np.int64)
    write_raw(tmp_path / "c.npz", resealed(arrays))
    refused(tmp_path / "c.npz", match)


def test_missing_array(tmp_path: Path) -> None:
    arrays = ck.to_arrays(make_checkpoint())
    del arrays["params.W2"]
    write_raw(tmp_path / "c.npz", resealed(arrays))
    refused(tmp_path / "c.npz", "lacks array.*params.W2")


def test_zip_member_that_is_not_an_array(tmp_path: Path) -> None:
    import zipfile

    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    with zipfile.ZipFile(tmp_path / "c.npz", "a") as zf:
        zf.writestr("notes.txt", "hello")
    refused(tmp_path / "c.npz", "member 'notes.txt' is not a numpy array")


def test_member_declaring_a_huge_array(tmp_path: Path) -> None:
    """A forged header asking for 7 TiB is refused from sizes alone, before any allocation."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    arrays = ck.to_arrays(make_checkpoint())
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w") as f:
                if name == "params.C":
                    f.write(header.getvalue() + bytes(64))
                else:
                    np.lib.format.write_array(f, arr)
    refused(tmp_path / "c.npz", r"params.C' claims shape \(1000000000000,\) of <f8")


@pytest.mark.parametrize("chars", ["a.b", "abca", "a"])
def test_impossible_vocabulary(tmp_path: Path, chars: str) -> None:
    """A stranger's vocabulary with the boundary, a repeat, or one character is refused."""
    arrays = ck.to_arrays(make_checkpoint())
    arrays["vocab_json"] = ck._json_array({"chars": chars})
    write_raw(tmp_path / "c.npz", resealed(arrays))
    refused(tmp_path / "c.npz", "is not a set of at least 2 characters")


@pytest.mark.parametrize(
    "key", [np.zeros(3, np.uint32), np.zeros((2, 2), np.uint32), np.zeros(2, np.int32)]
)
def test_rng_key_not_a_key(tmp_path: Path, key: np.ndarray) -> None:
    arrays = ck.to_arrays(make_checkpoint())
    arrays["rng_key"] = key
    write_raw(tmp_path / "c.npz", resealed(arrays))
    refused(tmp_path / "c.npz", "rng_key .* is not a jax PRNG key")


class Boom:
    """Unpickling this would create a marker file: the test proves it never happens."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_object_array_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    Boom.marker = marker
    arrays = dict(ck.to_arrays(make_checkpoint()))
    arrays["config_json"] = np.array([Boom()], dtype=object)  # np.savez pickles object arrays
    write_raw(tmp_path / "c.npz", arrays)
    message = refused(tmp_path / "c.npz", "pickled object array")
    assert "config_json" in message
    assert not marker.exists()


def test_shapes_inconsistent_with_vocabulary(tmp_path: Path) -> None:
    """A checkpoint whose W2/b2 are for another vocabulary than the one it records."""
    good = make_checkpoint()
    params = good.params._replace(W2=good.params.W2[:, :-1], b2=good.params.b2[:-1])
    save_checkpoint(tmp_path / "c.npz", good._replace(params=params))
    refused(tmp_path / "c.npz", r"params.W2 has shape \(8, 26\), expected \(8, 27\)")


def test_config_disagrees_with_arrays(tmp_path: Path) -> None:
    good = make_checkpoint()
    save_checkpoint(tmp_path / "c.npz", good._replace(config=good.config | {"n_hidden": 9}))
    refused(tmp_path / "c.npz", "config n_hidden=9 but the arrays have n_hidden=8")


def test_vocabulary_does_not_match_data(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    message = refused(tmp_path / "c.npz", "vocabulary", expect_vocab=Vocab("abc"))
    assert "'abc'" in message


def test_config_does_not_match_flags(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    refused(
        tmp_path / "c.npz",
        "block_size=3 but block_size=5 was asked for",
        expect_config={"block_size": 5},
    )
    refused(
        tmp_path / "c.npz",
        "dtype='float32' but dtype='float64'",
        expect_config={"dtype": "float64"},
    )


# ------------------------------------------------------------------------------ writing


def test_failed_write_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails halfway leaves no temporary file and the previous checkpoint intact."""
    good = make_checkpoint(seed=0)
    save_checkpoint(tmp_path / "c.npz", good)

    def savez_then_fail(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(CheckpointError, match="c.npz: cannot write checkpoint .No space left"):
        save_checkpoint(tmp_path / "c.npz", make_checkpoint(seed=1))
    assert os.listdir(tmp_path) == ["c.npz"]
    monkeypatch.undo()
    assert_same(load_checkpoint(tmp_path / "c.npz"), good)


def test_failed_rename_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_replace(src, dst):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(CheckpointError, match="Permission denied"):
        save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    assert os.listdir(tmp_path) == []


def test_write_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no/c.npz: cannot write checkpoint"):
        save_checkpoint(tmp_path / "no" / "c.npz", make_checkpoint())


def test_config_must_be_json(tmp_path: Path) -> None:
    bad = make_checkpoint()._replace(config={"dtype": np.float32})
    with pytest.raises(CheckpointError, match="not JSON-able"):
        save_checkpoint(tmp_path / "c.npz", bad)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------ --out


def test_out_dir_is_created(tmp_path: Path) -> None:
    out = prepare_out_dir(tmp_path / "a" / "b")
    assert out.is_dir() and os.listdir(out) == []  # the probe file is gone


def test_out_dir_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError) as info:
        prepare_out_dir(tmp_path / "f")
    names_setting(info.value, "^{} .*f: is a file", "out", "--out")


def test_out_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError) as info:
        prepare_out_dir(tmp_path / "f" / "sub")
    names_setting(info.value, "^{} .*f/sub: not a writable directory", "out", "--out")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, Linux only")
def test_out_dir_not_writable() -> None:
    """/proc refuses new files even to root (chmod 000 would not stop root)."""
    with pytest.raises(ConfigError) as info:
        prepare_out_dir("/proc")
    names_setting(info.value, "^{} /proc: not a writable directory", "out", "--out")


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root writes into chmod 555 directories; /proc covers this as root",
)
def test_out_dir_read_only(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="not a writable directory"):
        prepare_out_dir(tmp_path / "ro")
