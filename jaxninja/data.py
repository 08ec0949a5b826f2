"""Words, vocabulary and the (context -> next character) datasets, exactly as in the notebook.

The notebook reads ``names.txt``, builds the vocabulary from its sorted characters (``.`` at 0),
shuffles the words with ``random.seed(42)`` and splits them 80/10/10. Everything here reproduces
that bit for bit, so names.txt gives the lecture's shapes (182625, 3), (22655, 3), (22866, 3).

A word list is input from a stranger. Only a regular file is read (a directory, a character device
such as ``/dev/zero``, a FIFO or a socket is refused by ``stat`` before anything is read, and the
file is opened with ``O_NONBLOCK`` so a FIFO swapped in meanwhile cannot hang the open), or ``-``
for standard input; either is read up to ``max_bytes`` (:data:`MAX_DATA_BYTES` unless raised).
Invisible Unicode format characters (category Cf: zero-width space, a byte order mark in mid-file,
bidirectional overrides) are refused with line and column; a leading BOM is skipped, and ZWJ /
ZWNJ between two letters are kept, as real names in some scripts need them.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import random
import sys
import unicodedata
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxninja.checks import BLOCK_SIZE
from jaxninja.errors import DataError, Name, NotRegularFile
from jaxninja.io.files import open_regular

BOUNDARY = "."
NAMES_ENV = "JAXNINJA_NAMES"
MIN_WORDS = 6  # fewest words for which int(0.8 n) < int(0.9 n) < n: no empty split


class Builtin(str):
    """The built-in data set's name: only a value of this type means it, so no file name (a
    ``--data`` argument is always a file) can collide with it."""


DEFAULT_SOURCE = Builtin("built-in US census first names (5,163)")  # PyPI's `names` package
RECORDED_DEFAULT = "names-package"
"""What a checkpoint or plan records for the built-in set. Files are recorded as absolute
paths, so a recorded ``names-package`` is never a file (:func:`recorded`)."""
STDIN = "-"  # --data - reads the words from standard input (a file named "-" is ./-)
STDIN_NAME = "<stdin>"  # how errors name standard input
# names.txt is 228 KB (32,033 names). 16 MiB is 70 times that (some 2 million names); the
# notebook's pipeline builds Python lists of about 140 bytes per character of data (block_size 3,
# measured with tracemalloc), so 16 MiB already costs ~2.3 GB while the contexts are built.
# Raise it with max_bytes (the CLI flag below).
MAX_DATA_BYTES = 16 * 2**20
# named in the error: the setting of every command and entry point (run_training, sample,
# evaluate, check: max_data_bytes=); read_words / load_dataset call it max_bytes
MAX_BYTES = Name("max_data_bytes", "--max-data-bytes")
SHOWN_CHARS = 40  # an error shows at most this much of a word (enough to find it by eye)
BOM = "\ufeff"
JOINERS = {"\u200c": "ZERO WIDTH NON-JOINER", "\u200d": "ZERO WIDTH JOINER"}


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
    data_hash: str = ""  # words_hash of the words; "" for a Dataset built without load_dataset
    n_words: int = 0  # how many words (0 for a Dataset built without load_dataset)

    def describe(self) -> str:
        """The data by name and size, e.g. ``names.txt, 32,033 words`` (no folder: the same
        text wherever the file lives)."""
        name = (
            self.source
            if isinstance(self.source, Builtin) or self.source == STDIN_NAME
            else Path(self.source).name
        )
        return f"{name}, {self.n_words:,} words"

    def shapes(self) -> dict[str, list[int]]:
        return {
            name: list(split.x.shape)
            for name, split in self._asdict().items()
            if isinstance(split, Split)
        }


def parse_words(text: str, source: str) -> list[str]:
    """Split text into words: one a line, CRLF and a final newline tolerated, blank lines skipped.

    White space around a word is dropped, and so is a byte order mark at the very start. A word
    holding the boundary character ``.``, white space, a control character or an invisible
    format character is an error naming its line and column (see :func:`char_problem`). Lines
    are split on ``\\n`` only (not ``str.splitlines``), so a stray form feed or U+2028 inside a
    word is reported instead of silently starting a new word.
    """
    if text.startswith(BOM):
        text = text[len(BOM) :]
    words = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        word = line.strip()
        if not word:
            continue
        if word.isascii() and word.isalpha():  # a-z, A-Z only: no character has a problem
            words.append(word)
            continue
        col0 = len(line) - len(line.lstrip())
        for i, ch in enumerate(word):
            before = word[i - 1] if i else ""
            after = word[i + 1 : i + 2]
            problem = char_problem(ch, before, after)
            if problem:
                shown = _shown_word(word, i)
                raise DataError(f"{source}:{lineno}:{col0 + i + 1}: word {shown} {problem}")
        words.append(word)
    if not words:
        raise DataError(f"{source}: no words (the file is empty or holds only blank lines)")
    return words


def _shown_word(word: str, i: int) -> str:
    """``word`` for an error message: its repr, or for a long one (a binary file read as text
    can make a "word" of megabytes) the SHOWN_CHARS around position ``i``."""
    if len(word) <= SHOWN_CHARS:
        return repr(word)
    start = max(0, min(i - SHOWN_CHARS // 2, len(word) - SHOWN_CHARS))
    part = repr(word[start : start + SHOWN_CHARS])
    return f"{'...' if start else ''}{part}{'...' if start + SHOWN_CHARS < len(word) else ''}"


def _letter_or_mark(ch: str) -> bool:
    """A letter (L*) or a combining mark (M*: in Indic scripts a virama precedes the joiner)."""
    return bool(ch) and unicodedata.category(ch)[0] in "LM"


def char_problem(ch: str, before: str = "", after: str = "") -> str | None:
    """Why ``ch`` cannot be part of a word, or None if it can (any letter, any script, any case).

    ``before`` / ``after`` are its neighbours in the word ("" at an end): ZWJ and ZWNJ are kept
    only between two letters (or marks), where scripts such as Persian and Devanagari need them.
    """
    if ch == BOUNDARY:
        return "contains the boundary character '.', which is reserved for start/end of a word"
    if ch.isspace():
        return f"contains white space ({ch!r}); put one word on each line"
    category = unicodedata.category(ch)
    if category == "Cc":
        return (
            f"contains the control character U+{ord(ch):04X} (a binary or UTF-16 file? "
            f"save it as UTF-8 text)"
        )
    if category == "Cs":
        return f"contains the lone surrogate U+{ord(ch):04X}, which is not a character"
    if ch in JOINERS:
        if _letter_or_mark(before) and _letter_or_mark(after):
            return None
        return f"contains U+{ord(ch):04X} {JOINERS[ch]} that is not between two letters"
    if ch == BOM:
        return "contains a byte order mark (U+FEFF) in mid-file; remove it"
    if category == "Cf":
        name = unicodedata.name(ch, "a format character")
        return f"contains the invisible format character U+{ord(ch):04X} {name}; remove it"
    return None


def vocab_problem(chars: str) -> str | None:
    """Why ``chars`` cannot be a vocabulary (e.g. one stored in a stranger's checkpoint): each
    character must be one a word may hold (joiners included, since words may hold them)."""
    for ch in chars:
        problem = char_problem(ch, "a", "a") if ch in JOINERS else char_problem(ch)
        if problem:
            return problem
    return None


def words_hash(words: list[str]) -> str:
    """SHA-256 (hex) of the words in order, UTF-8, joined by newlines: the content of a word
    list, whatever its line endings, surrounding white space or BOM. Checkpoints record it so
    ``--resume`` can tell when the data changed."""
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


def _too_big(name: str, max_bytes: int, size: int | None = None) -> DataError:
    """The error for input over ``max_bytes``; ``size`` if known (from stat), else None."""
    what = f"{size:,} bytes is more than" if size is not None else "holds more than"
    return DataError(
        f"{name}: {what} the {max_bytes:,}-byte limit for a word list "
        "(names.txt is 228 KB); raise it with ",
        MAX_BYTES,
    )


def _read_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` (checked by stat first)."""
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise _too_big(str(path), max_bytes, size)
            raw = f.read(max_bytes + 1)  # the file may have grown since the fstat
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except NotRegularFile as err:
        if err.kind == "a directory":
            raise DataError(f"{path}: is a directory, not a word list") from None
        raise DataError(f"{path}: is {err.kind}, not a regular file of words") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    except ValueError as err:  # e.g. a NUL byte in the path
        raise DataError(f"{path!r}: not a usable path ({err})") from None
    if len(raw) > max_bytes:
        raise _too_big(str(path), max_bytes)
    return raw


def _read_stdin(max_bytes: int) -> bytes:
    """Standard input, to its end but at most ``max_bytes``."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise DataError(f"{STDIN_NAME}: there is no standard input to read words from")
    try:
        raw = stream.read(max_bytes + 1)
    except OSError as err:
        raise DataError(f"{STDIN_NAME}: cannot read ({err.strerror or err})") from None
    if len(raw) > max_bytes:
        raise _too_big(STDIN_NAME, max_bytes)
    return raw


def decode_words(raw: bytes, source: str) -> list[str]:
    """UTF-8 bytes to words (see :func:`parse_words`); a leading UTF-8 BOM is skipped."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = raw[: err.start].count(b"\n") + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{source}:{lineno}: not UTF-8 (byte 0x{raw[err.start]:02x} at byte "
            f"{col} of the line); save the file as UTF-8"
        ) from None
    return parse_words(text, source)


def read_words(path: str | os.PathLike, max_bytes: int = MAX_DATA_BYTES) -> list[str]:
    """Read a UTF-8 word list from ``path`` (``-``: standard input) with errors that name the
    file, line and column.

    Only a regular file is read (see :func:`open_regular`), and at most ``max_bytes`` of it or
    of standard input: a larger input is an error, found by ``stat`` before reading a file. A
    UTF-8 byte order mark at the start is skipped (some editors write one).
    """
    if isinstance(path, str) and path == STDIN:
        return decode_words(_read_stdin(max_bytes), STDIN_NAME)
    path = Path(path)
    return decode_words(_read_file(path, max_bytes), str(path))


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


def recorded(value: str | None) -> str | None:
    """The data a checkpoint or plan recorded, as a source: its record of the built-in set is
    :data:`DEFAULT_SOURCE`; anything else (an absolute path, ``-``) as it is."""
    return DEFAULT_SOURCE if value == RECORDED_DEFAULT else value


def resolve_source(data: str | os.PathLike | None = None) -> str | None:
    """Where the words come from: ``data``, else ``$JAXNINJA_NAMES``, else None (the default
    data set). Nothing is looked up relative to the working directory, so the data never
    changes with the folder a command runs in."""
    if isinstance(data, Builtin):
        return data
    if data is not None:
        return str(data)
    env = os.environ.get(NAMES_ENV)
    if env:
        return env
    return None


def load_words(
    data: str | os.PathLike | None = None, max_bytes: int = MAX_DATA_BYTES
) -> tuple[list[str], str]:
    """Return (words, source) following :func:`resolve_source`; :data:`DEFAULT_SOURCE` (or a
    checkpoint's record of it, through :func:`recorded`) means the built-in set, any string a
    file (``names-package`` too)."""
    source = resolve_source(data)
    if source is None or isinstance(source, Builtin):
        return default_words(), DEFAULT_SOURCE
    return read_words(source, max_bytes), source


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
    """Every (context, next character) pair of ``words``, the context starting as ``...``.

    Vectorised: each word becomes ``block_size`` boundary tokens, its characters and a final
    boundary, all words end to end in one array; the contexts are that array's windows of
    ``block_size`` tokens that end just before each character or final boundary (the notebook's
    loop, without a Python list per example).
    """
    lengths = np.fromiter((len(w) + 1 for w in words), np.int64, len(words))
    n = int(lengths.sum())
    lut = np.zeros(max(map(ord, vocab.chars)) + 1, np.int32)
    lut[[ord(ch) for ch in vocab.chars]] = np.arange(1, vocab.size, dtype=np.int32)
    codes = np.frombuffer(
        BOUNDARY.join(words).encode("utf-32-le"), dtype=np.uint32
    )  # one code point per character; the joins become the boundaries between words
    tokens = np.zeros(n, np.int32)  # the targets y: each word's characters, then its boundary
    is_char = np.ones(len(codes), bool)
    is_char[np.cumsum(lengths[:-1]) - 1] = False  # where the join put a boundary
    tokens[: len(codes)][is_char] = lut[codes[is_char]]
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # first example of its word
    position = np.arange(n) - starts  # index of the predicted token within its word
    # a padded stream: block_size zeros before each word, so a window never crosses into the
    # previous word; example i's context ends at its own padded position
    padded_at = position + starts + block_size * (np.repeat(np.arange(len(words)), lengths) + 1)
    stream = np.zeros(n + block_size * len(words), np.int32)
    stream[padded_at] = tokens
    windows = np.lib.stride_tricks.sliding_window_view(stream, block_size)
    x = np.ascontiguousarray(windows[padded_at - block_size])
    return Split(x.reshape(n, block_size), tokens)


def contexts_bytes(words: list[str], block_size: int) -> int:
    """Bytes the three splits' contexts and targets take (int32), for the memory check."""
    n = sum(len(w) + 1 for w in words)
    return n * (2 * block_size + 2) * 4  # the windows' copy and the padded stream, and y


def split_words(words: list[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """The notebook's split: ``random.seed(42); random.shuffle(words)``, then 80/10/10."""
    words = list(words)
    random.Random(seed).shuffle(words)
    n1 = int(0.8 * len(words))
    n2 = int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]


def load_dataset(
    data: str | os.PathLike | None = None, block_size: int = 3, max_bytes: int = MAX_DATA_BYTES
) -> Dataset:
    """Load words (at most ``max_bytes`` of them, see :func:`read_words`), build the vocabulary
    and the three splits; each split must be non-empty. ``data_hash`` is :func:`words_hash`."""
    if block_size < 1:
        from jaxninja.errors import ConfigError

        raise ConfigError(BLOCK_SIZE, f" must be >= 1, got {block_size}")
    words, source = load_words(data, max_bytes)
    vocab = build_vocab(words, source)
    from jaxninja.training import memory  # refuse a context that cannot fit before building it

    needed = contexts_bytes(words, block_size)
    memory.check_fits(needed, (BLOCK_SIZE, f" {block_size} on {source}"))
    parts = split_words(words)
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        if not part:
            raise DataError(
                f"{source}: {len(words)} word(s) leave the {name} split empty; "
                f"the 80/10/10 split needs at least {MIN_WORDS} words"
            )
    splits = [build_dataset(part, vocab, block_size) for part in parts]
    return Dataset(
        *splits, vocab=vocab, source=source, data_hash=words_hash(words), n_words=len(words)
    )
