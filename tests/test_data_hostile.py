"""A word list is input from a stranger: special files, unbounded input and invisible characters
are refused in one line naming file (line, column), and nothing can hang or fill memory."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jaxninja.data import (
    MAX_DATA_BYTES,
    STDIN_NAME,
    Dataset,
    load_dataset,
    parse_words,
    read_words,
    vocab_problem,
    words_hash,
)
from jaxninja.errors import DataError
from tests import helpers
from tests.helpers import ROOT, finishes

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia"]


def refused(path: Path | str, match: str, **kwargs) -> str:
    """read_words raises a one-line DataError starting with ``path`` (``-``: standard input) and
    matching ``match``."""
    return helpers.refused(DataError, read_words, path, match, at_start=True, **kwargs)


# ------------------------------------------------------------------------------ special files


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_character_device_is_refused_without_reading() -> None:
    """/dev/zero would be read until memory runs out; it is refused by stat."""
    refused("/dev/zero", "/dev/zero: is a character device, not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "words.txt").symlink_to("/dev/zero")
    refused(tmp_path / "words.txt", "is a character device")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_without_a_writer_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "words.fifo"
    os.mkfifo(fifo)
    err = finishes(read_words, fifo)
    assert isinstance(err, DataError)
    assert str(err) == f"{fifo}: is a FIFO (named pipe), not a regular file of words"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_swapped_in_after_stat_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: stat saw a regular file, then a FIFO took its place. O_NONBLOCK keeps the open
    from waiting for a writer, and fstat of what was opened refuses it."""
    fifo = tmp_path / "words.fifo"
    os.mkfifo(fifo)
    regular = tmp_path / "regular.txt"
    regular.write_text("emma\n")
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular if p == fifo else p))
    err = finishes(read_words, fifo)
    assert isinstance(err, DataError) and "is a FIFO (named pipe)" in str(err)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")
def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        refused(path, "is a socket, not a regular file")


# ------------------------------------------------------------------------------ size limits


def test_oversized_file_is_refused_by_stat(tmp_path: Path) -> None:
    """A 1 TiB sparse file (no disk used) is refused from its size, without reading it."""
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.truncate(2**40)
    message = refused(path, f"1,099,511,627,776 bytes is more than the {MAX_DATA_BYTES:,}-byte")
    assert message.endswith("raise it with max_data_bytes=")  # Python's spelling of the setting
    with pytest.raises(DataError) as err:
        read_words(path)
    assert err.value.render(cli=True).endswith("raise it with --max-data-bytes")


def test_limit_is_exact_and_can_be_raised(tmp_path: Path) -> None:
    content = "\n".join(WORDS).encode()
    path = tmp_path / "w.txt"
    path.write_bytes(content)
    assert read_words(path, max_bytes=len(content)) == WORDS
    refused(
        path,
        f"{len(content):,} bytes is more than the {len(content) - 1:,}-byte limit",
        max_bytes=len(content) - 1,
    )


def test_file_growing_after_stat_is_still_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stat said small, but more bytes arrive: only max_bytes + 1 are read, then refused."""
    path = tmp_path / "w.txt"
    path.write_bytes(b"emma\n" * 1000)
    real_fstat = os.fstat

    class Small:
        def __init__(self, st: os.stat_result):
            self.st_mode, self.st_size = st.st_mode, 10

    monkeypatch.setattr(os, "fstat", lambda fd: Small(real_fstat(fd)))
    refused(path, "holds more than the 100-byte limit", max_bytes=100)


def stdin_of(monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(content)))


def test_stdin_is_read_with_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin_of(monkeypatch, b"\xef\xbb\xbf" + "\n".join(WORDS).encode())
    assert read_words("-") == WORDS
    stdin_of(monkeypatch, "\n".join(WORDS).encode())
    dataset = load_dataset("-")
    assert dataset.source == "-" and dataset.data_hash == words_hash(WORDS)


def test_stdin_errors_name_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin_of(monkeypatch, b"emma\nav\xe2\x80\x8ba\n")
    refused("-", rf"{STDIN_NAME}:2:3: .*U\+200B ZERO WIDTH SPACE")
    stdin_of(monkeypatch, b"emma\n" * 100)
    refused("-", f"{STDIN_NAME}: holds more than the 99-byte limit", max_bytes=99)
    monkeypatch.setattr(sys, "stdin", None)
    refused("-", "no standard input")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_stdin_is_bounded() -> None:
    """`jaxninja train --data - < /dev/zero`: reads max_bytes + 1, then refuses, in a process."""
    code = "from jaxninja.data import read_words; read_words('-', max_bytes=1 << 20)"
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=60,  # start-up and 1 MiB of NULs take well under a second
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
    assert proc.returncode != 0
    assert "DataError: <stdin>: holds more than the 1,048,576-byte" in proc.stderr


# ------------------------------------------------------------------------------ invisible text


@pytest.mark.parametrize(
    "text, match",
    [
        ("emma\nav\u200ba\n", r":2:3: word .* U\+200B ZERO WIDTH SPACE"),
        ("emma\nava\ufeff\n", r":2:4: .*byte order mark \(U\+FEFF\) in mid-file"),
        ("\ufeffemma\n\ufeffava\n", r":2:1: .*byte order mark"),  # only the first one is skipped
        ("emma\nma\u202eria\n", r":2:3: .*U\+202E RIGHT-TO-LEFT OVERRIDE"),
        ("so\u00adphia\n", r":1:3: .*U\+00AD SOFT HYPHEN"),
        ("so\u2060phia\n", r":1:3: .*U\+2060 WORD JOINER"),
        ("\u200demma\n", r":1:1: .*U\+200D ZERO WIDTH JOINER that is not between two letters"),
        ("emma\u200c\n", r":1:5: .*U\+200C ZERO WIDTH NON-JOINER that is not between"),
        ("em\u200d1\n", r":1:3: .*U\+200D"),  # a digit is not a letter
        ("\U0001f468\u200d\U0001f469\n", r":1:2: .*U\+200D"),  # emoji are symbols, not letters
        ("  ab\u200bc\n", r":1:5: "),  # the column counts the indent
    ],
)
def test_format_characters_are_refused_with_line_and_column(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "w.txt"
    path.write_bytes(text.encode("utf-8"))
    refused(path, match)


@pytest.mark.parametrize(
    "word",
    [
        "\u0645\u0647\u200c\u0644\u0642\u0627",  # Persian Mahlagha: ZWNJ between two letters
        "\u0915\u094d\u200d\u0937",  # Devanagari KA VIRAMA ZWJ SSA: the joiner follows a mark
    ],
)
def test_joiners_between_letters_are_kept(word: str) -> None:
    words = parse_words(f"emma\n{word}\n", "f")
    assert words == ["emma", word]


def test_leading_bom_is_skipped_in_text_too() -> None:
    """parse_words (used for stdin and files) skips a leading U+FEFF as read_words skips the
    UTF-8 bytes, so neither path learns an invisible first character."""
    assert parse_words("\ufeffemma\nava\n", "f") == ["emma", "ava"]


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(DataError, match=r"f:1:2: .*lone surrogate U\+D800"):
        parse_words("a\ud800b\n", "f")


@pytest.mark.parametrize(
    "chars, problem",
    [
        ("abc", None),
        ("ab\u200d", None),  # a vocabulary may hold the joiners its words hold
        ("ab\u200b", "U+200B"),
        ("ab\x1b", "control character U+001B"),  # a terminal escape in a stranger's checkpoint
        ("ab\ud800", "lone surrogate"),
        ("a b", "white space"),
    ],
)
def test_vocab_problem(chars: str, problem: str | None) -> None:
    found = vocab_problem(chars)
    assert found is None if problem is None else problem in found


# ------------------------------------------------------------------------------ content hash


def test_words_hash_is_sha256_of_the_words() -> None:
    expected = hashlib.sha256(b"emma\nava").hexdigest()
    assert words_hash(["emma", "ava"]) == expected
    assert words_hash(["ava", "emma"]) != expected  # order is content: it decides the split
    assert words_hash(["emma", "ava", "mia"]) != expected
    assert words_hash(["李娜"]) == hashlib.sha256("李娜".encode()).hexdigest()


def test_hash_ignores_layout_but_not_content(tmp_path: Path) -> None:
    """CRLF, a BOM and surrounding white space are layout; one changed letter is content."""
    plain, dressed, other = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    plain.write_text("\n".join(WORDS) + "\n")
    dressed.write_bytes(b"\xef\xbb\xbf" + "\r\n\r\n".join(f"  {w} " for w in WORDS).encode())
    other.write_text("\n".join(WORDS[:-1] + ["amelie"]))
    hashes = [load_dataset(p).data_hash for p in (plain, dressed, other)]
    assert hashes[0] == hashes[1] == words_hash(WORDS)
    assert hashes[2] != hashes[0] and len(hashes[2]) == 64


def test_dataset_built_by_hand_has_no_hash(tmp_path: Path) -> None:
    """Constructors that predate data_hash keep working; "" means "not known"."""
    path = tmp_path / "w.txt"
    path.write_text("\n".join(WORDS))
    loaded = load_dataset(path)
    by_hand = Dataset(loaded.train, loaded.val, loaded.test, loaded.vocab, loaded.source)
    assert by_hand.data_hash == "" and by_hand.shapes() == loaded.shapes()


def test_long_word_is_shown_in_part(tmp_path: Path) -> None:
    """A binary file can make one "word" of megabytes; the message shows 40 characters around
    the fault, not all of it."""
    path = tmp_path / "w.txt"
    path.write_bytes(b"a" * 1_000_000 + b"\x00" + b"b" * 1_000_000)
    message = refused(path, r":1:1000001: word \.\.\.'a{20}\\x00b{19}'\.\.\. contains the control")
    assert len(message) < 300
    path.write_bytes(b"\x00" + b"b" * 100)
    refused(path, r":1:1: word '\\x00b{39}'\.\.\. contains")
