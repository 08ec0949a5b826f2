"""Words, vocabulary and the (context -> next character) datasets, exactly as in the notebook.

The notebook reads ``names.txt``, builds the vocabulary from its sorted characters (``.`` at 0),
shuffles the words with ``random.seed(42)`` and splits them 80/10/10. Everything here reproduces
that bit for bit, so names.txt gives the lecture's shapes (182625, 3), (22655, 3), (22866, 3).
"""

from __future__ import annotations

import codecs
import os
import random
import unicodedata
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxninja.errors import DataError

BOUNDARY = "."
NAMES_ENV = "JAXNINJA_NAMES"
MIN_WORDS = 6  # fewest words for which int(0.8 n) < int(0.9 n) < n: no empty split
DEFAULT_SOURCE = "names-package"  # the US census first names shipped by PyPI's `names`


class Vocab(NamedTuple):
    """The characters of the data: ``chars[i - 1]`` is token i, token 0 is the boundary ``.``."""

    chars: str

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def stoi(self) -> dict[str, int]:
        return {BOUNDARY: 0} | {ch: i + 1 for i, ch in enumerate(self.chars)}

    @property
    def itos(self) -> dict[int, str]:
        return {i: ch for ch, i in self.stoi.items()}

    def encode(self, word: str) -> list[int]:
        stoi = self.stoi
        return [stoi[ch] for ch in word]

    def decode(self, tokens: list[int]) -> str:
        itos = self.itos
        return "".join(itos[int(t)] for t in tokens)


class Split(NamedTuple):
    """One split of the dataset: contexts ``x`` (N, block_size) and next tokens ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray


class Dataset(NamedTuple):
    """The notebook's three splits, the vocabulary, and where the words came from."""

    train: Split
    val: Split
    test: Split
    vocab: Vocab
    source: str

    def shapes(self) -> dict[str, list[int]]:
        return {
            name: list(split.x.shape)
            for name, split in self._asdict().items()
            if isinstance(split, Split)
        }


def parse_words(text: str, source: str) -> list[str]:
    """Split text into words: one a line, CRLF and a final newline tolerated, blank lines skipped.

    White space around a word is dropped. A word holding the boundary character ``.``, white
    space or a control character is an error naming its line and column. Lines are split on
    ``\\n`` only (not ``str.splitlines``), so a stray form feed or U+2028 inside a word is reported
    instead of silently starting a new word.
    """
    words = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        word = line.strip()
        if not word:
            continue
        col0 = len(line) - len(line.lstrip())
        for col, ch in enumerate(word, start=col0 + 1):
            problem = _bad_character(ch)
            if problem:
                raise DataError(f"{source}:{lineno}:{col}: word {word!r} {problem}")
        words.append(word)
    if not words:
        raise DataError(f"{source}: no words (the file is empty or holds only blank lines)")
    return words


def _bad_character(ch: str) -> str | None:
    """Why ``ch`` cannot be part of a word, or None if it can (any letter, any script, any case)."""
    if ch == BOUNDARY:
        return "contains the boundary character '.', which is reserved for start/end of a word"
    if ch.isspace():
        return f"contains white space ({ch!r}); put one word on each line"
    if unicodedata.category(ch) == "Cc":
        return (
            f"contains the control character U+{ord(ch):04X} (a binary or UTF-16 file? "
            f"save it as UTF-8 text)"
        )
    return None


def read_words(path: str | os.PathLike) -> list[str]:
    """Read a UTF-8 word list from ``path`` with errors that name the file and line.

    A UTF-8 byte order mark at the start is skipped (some editors write one).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a word list") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    except ValueError as err:  # e.g. a NUL byte in the path
        raise DataError(f"{path!r}: not a usable path ({err})") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = raw[: err.start].count(b"\n") + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{path}:{lineno}: not UTF-8 (byte 0x{raw[err.start]:02x} at byte "
            f"{col} of the line); save the file as UTF-8"
        ) from None
    return parse_words(text, str(path))


def default_words() -> list[str]:
    """The offline default: US census first names from the ``names`` package, lowercased,
    de-duplicated and sorted (5,163 names)."""
    folder = resources.files("names")
    words = set()
    for fname in ("dist.female.first", "dist.male.first"):
        for line in folder.joinpath(fname).read_text(encoding="utf-8").splitlines():
            if line.strip():
                words.add(line.split()[0].lower())
    return sorted(words)


def resolve_source(data: str | os.PathLike | None = None) -> str | None:
    """Where the words come from: ``data``, else ``$JAXNINJA_NAMES``, else None (the default
    data set). Nothing is looked up relative to the working directory, so the data never
    changes with the folder a command runs in."""
    if data is not None:
        return str(data)
    env = os.environ.get(NAMES_ENV)
    if env:
        return env
    return None


def load_words(data: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """Return (words, source) following :func:`resolve_source`; ``data`` equal to
    ``names-package`` (what a checkpoint records for the default) also means the default."""
    source = resolve_source(data)
    if source is None or source == DEFAULT_SOURCE:
        return default_words(), DEFAULT_SOURCE
    return read_words(source), source


def build_vocab(words: list[str], source: str = "data") -> Vocab:
    """The sorted set of characters in ``words``; at least two so there is something to learn."""
    chars = "".join(sorted(set("".join(words))))
    if len(chars) < 2:
        raise DataError(
            f"{source}: vocabulary has {len(chars)} character(s) {chars!r}; "
            f"need at least 2 to learn anything"
        )
    return Vocab(chars)


def build_dataset(words: list[str], vocab: Vocab, block_size: int) -> Split:
    """Every (context, next character) pair of ``words``, the context starting as ``...``."""
    stoi = vocab.stoi
    xs: list[list[int]] = []
    ys: list[int] = []
    for w in words:
        context = [0] * block_size
        for ch in w + BOUNDARY:
            ix = stoi[ch]
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    x = np.array(xs, dtype=np.int32).reshape(len(xs), block_size)
    return Split(x, np.array(ys, dtype=np.int32))


def split_words(words: list[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """The notebook's split: ``random.seed(42); random.shuffle(words)``, then 80/10/10."""
    words = list(words)
    random.Random(seed).shuffle(words)
    n1 = int(0.8 * len(words))
    n2 = int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]


def load_dataset(data: str | os.PathLike | None = None, block_size: int = 3) -> Dataset:
    """Load words, build the vocabulary and the three splits; each split must be non-empty."""
    if block_size < 1:
        from jaxninja.errors import ConfigError

        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    words, source = load_words(data)
    vocab = build_vocab(words, source)
    parts = split_words(words)
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        if not part:
            raise DataError(
                f"{source}: {len(words)} word(s) leave the {name} split empty; "
                f"the 80/10/10 split needs at least {MIN_WORDS} words"
            )
    splits = [build_dataset(part, vocab, block_size) for part in parts]
    return Dataset(*splits, vocab=vocab, source=source)
