"""Every way a word list can be unusable gives a one-line DataError naming file, line, column.

Mixed case and non-ASCII letters are not errors: they are data and become vocabulary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jaxninja import data
from jaxninja.data import MIN_WORDS, load_dataset, read_words
from jaxninja.errors import ConfigError, DataError
from tests import helpers

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia"]


def write(tmp_path: Path, content: str | bytes, name: str = "words.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def refused(path: Path | str, match: str, loader=read_words) -> str:
    """``loader(path)`` raises a one-line DataError naming the file and matching ``match``."""
    return helpers.refused(DataError, loader, path, match)


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.txt", "nope.txt: no such file")


def test_directory(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory, not a word list")


def test_path_through_a_file(tmp_path: Path) -> None:
    """An OSError other than missing/directory (here ENOTDIR) is reported, not raised raw."""
    refused(write(tmp_path, "emma\n") / "x", r"cannot read \(Not a directory\)")


def test_unreadable_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied, simulated so it also holds when the tests run as root."""

    path = write(tmp_path, "emma\n")
    real_open = os.open

    def denied(name, *args, **kwargs):
        if Path(name) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    refused(path, r"cannot read \(Permission denied\)")


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root can read chmod 000 files; test_unreadable_reported covers it",
)
def test_unreadable_for_real(tmp_path: Path) -> None:
    path = write(tmp_path, "emma\n")
    path.chmod(0)
    try:
        refused(path, r"cannot read \(Permission denied\)")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"emma\nol\xffivia\nava\n", r":2: not UTF-8 \(byte 0xff at byte 3 of the line\)"),
        ("emma\nzoë\n".encode("latin-1"), r":2: not UTF-8 \(byte 0xeb at byte 3"),
        ("emma\n".encode("utf-16"), r":1: not UTF-8 \(byte 0xff at byte 1"),  # UTF-16 with its BOM
    ],
)
def test_not_utf8_names_the_line(tmp_path: Path, content: bytes, match: str) -> None:
    refused(write(tmp_path, content), match)


def test_utf16_without_bom(tmp_path: Path) -> None:
    """UTF-16 LE without a BOM decodes as UTF-8 full of NULs: refused, not learned as letters."""
    refused(write(tmp_path, "emma\n".encode("utf-16-le")), r":1:2: .*control character U\+0000")


def test_utf8_bom_is_skipped(tmp_path: Path) -> None:
    assert read_words(write(tmp_path, b"\xef\xbb\xbfemma\nava\n")) == ["emma", "ava"]


@pytest.mark.parametrize("content", ["", "\n", "\n  \n\t\n\r\n"])
def test_empty_or_blank(tmp_path: Path, content: str) -> None:
    refused(write(tmp_path, content), "no words")


@pytest.mark.parametrize(
    "content, match",
    [
        ("emma\nol.ivia\n", r":2:3: word 'ol.ivia' contains the boundary character '.'"),
        (".\n", r":1:1: word '.' contains the boundary"),
        ("emma\n  a.b\n", r":2:4: word 'a.b' contains the boundary"),  # column counts the indent
        ("emma\nanna maria\n", r":2:5: word 'anna maria' contains white space \(' '\)"),
        ("anna\tmaria\n", r":1:5: .*white space \('\\t'\)"),
        ("anna\fmaria\n", r":1:5: .*white space \('\\x0c'\)"),  # splitlines() would split here
        ("anna\u2028maria\n", r":1:5: .*white space \('\\u2028'\)"),
        ("emma\rava\r", r":1:5: .*white space \('\\r'\)"),  # old Mac line endings: not one a line
        ("emma\nav\x07a\n", r":2:3: .*control character U\+0007"),
    ],
)
def test_bad_character_names_line_and_column(tmp_path: Path, content: str, match: str) -> None:
    refused(write(tmp_path, content), match)


def test_tolerated_layout(tmp_path: Path) -> None:
    """CRLF, no final newline, blank lines and white space around a word are all fine."""
    path = write(tmp_path, "emma\r\n\r\n  ava \t\nmia")
    assert read_words(path) == ["emma", "ava", "mia"]


@pytest.mark.parametrize("n", range(1, MIN_WORDS))
def test_too_few_words_for_the_split(tmp_path: Path, n: int) -> None:
    message = refused(
        write(tmp_path, "\n".join(WORDS[:n])), f"{n} word.s. leave the", loader=load_dataset
    )
    assert f"at least {MIN_WORDS} words" in message


def test_min_words_is_enough(tmp_path: Path) -> None:
    """MIN_WORDS is exact: it and every larger count up to 100 give three non-empty splits."""
    for n in range(MIN_WORDS, 101):
        parts = data.split_words([f"w{'a' * i}" for i in range(n)])
        assert all(parts), n
    dataset = load_dataset(write(tmp_path, "\n".join(WORDS[:MIN_WORDS])))
    assert min(len(split.y) for split in dataset[:3]) > 0


def test_one_character_vocabulary(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join(["a", "aa", "aaa"] * 4))
    refused(path, r"vocabulary has 1 character\(s\) 'a'; need at least 2", loader=load_dataset)


def test_mixed_case_and_non_ascii_become_vocabulary(tmp_path: Path) -> None:
    words = ["Emma", "emma", "Zoë", "José", "Łukasz", "李娜", "Åsa", "Ömer", "ava", "Mia"]
    dataset = load_dataset(write(tmp_path, "\n".join(words) + "\n"))
    chars = dataset.vocab.chars
    for ch in "EeZëéŁ李娜ÅÖ":
        assert ch in chars
    assert "E" in chars and "e" in chars and chars.index("E") != chars.index("e")
    assert dataset.vocab.decode(dataset.vocab.encode("李娜")) == "李娜"
    n_pairs = sum(len(split.y) for split in dataset[:3])
    assert n_pairs == sum(len(w) + 1 for w in words)  # every character + the end '.'


def test_block_size_below_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset(write(tmp_path, "\n".join(WORDS)), block_size=0)
    helpers.names_setting(err.value, "^{} must be >= 1, got 0$", "block_size", "--block-size")


def test_a_context_too_big_for_memory_names_the_block_size(tmp_path: Path) -> None:
    """The contexts are refused before they are built, naming the setting as the caller spells
    it (block_size= from Python, --block-size from the command line)."""
    with pytest.raises(ConfigError) as err:
        load_dataset(write(tmp_path, "\n".join(WORDS)), block_size=10**9)
    pattern = "^{} 1000000000 on .* needs about [0-9.]+ GiB of memory"
    helpers.names_setting(err.value, pattern, "block_size", "--block-size")


def test_env_variable_path_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.NAMES_ENV, str(tmp_path / "gone.txt"))
    with pytest.raises(DataError, match="gone.txt: no such file"):
        load_dataset()
