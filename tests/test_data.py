"""The notebook's data pipeline: names.txt shapes, the vocabulary, the offline default data."""

import string
import subprocess
import sys

import pytest

from jaxninja.data import (
    DEFAULT_SOURCE,
    RECORDED_DEFAULT,
    Builtin,
    build_dataset,
    build_vocab,
    char_problem,
    default_words,
    load_dataset,
    parse_words,
    recorded,
    split_words,
)
from jaxninja.errors import DataError
from tests.helpers import ROOT


def test_names_txt_gives_the_notebooks_split_shapes(names_dataset):
    assert names_dataset.shapes() == {"train": [182625, 3], "val": [22655, 3], "test": [22866, 3]}
    assert names_dataset.train.y.shape == (182625,)


def test_vocabulary_is_sorted_characters_after_the_boundary(names_dataset):
    vocab = names_dataset.vocab
    assert vocab.size == 27
    assert vocab.itos[0] == "." and vocab.itos[1] == "a" and vocab.itos[26] == "z"
    assert vocab.decode(vocab.encode("emma")) == "emma"


def test_first_examples_match_the_notebook_loop():
    vocab = build_vocab(["emma", "ava"])
    split = build_dataset(["emma"], vocab, 3)
    e, m, a = vocab.stoi["e"], vocab.stoi["m"], vocab.stoi["a"]
    assert split.x.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a]]
    assert split.y.tolist() == [e, m, m, a, 0]


def test_split_is_random_seed_42_shuffle():
    import random

    words = [f"w{i}" for i in range(100)]
    expected = list(words)
    random.seed(42)
    random.shuffle(expected)
    train, val, test = split_words(words)
    assert train + val + test == expected and (len(train), len(val), len(test)) == (80, 10, 10)


def test_crlf_trailing_newline_and_blank_lines_are_tolerated():
    assert parse_words("ann\r\nbob\r\n\r\n  \ncy\n", "f") == ["ann", "bob", "cy"]


def test_boundary_character_in_a_word_names_the_line():
    with pytest.raises(DataError, match=r"f:2:2: .*'a\.b'"):
        parse_words("ann\na.b\n", "f")


def test_ascii_letters_skip_the_per_character_check_because_none_has_a_problem():
    """parse_words takes an all-ASCII-letter word without asking char_problem of each character
    (a fifth of a second over names.txt): that is only right while no ASCII letter has one."""
    letters = string.ascii_letters
    assert all(char_problem(c, b, a) is None for c in letters for b in ("", "a") for a in ("", "a"))
    assert parse_words("Emma\nzoe\n", "f") == ["Emma", "zoe"]
    with pytest.raises(DataError, match=r"f:2:3: .*'zo\\u200bé'"):  # the slow path still runs
        parse_words("Emma\nzo\u200bé\n", "f")


def test_default_data_set_loads_offline(tmp_path):
    """No --data, no $JAXNINJA_NAMES, no ../shared: the names package's census first names."""
    code = (
        "from jaxninja.data import load_dataset; d = load_dataset(); "
        "print(d.source, d.vocab.size, sum(len(s.y) for s in (d.train, d.val, d.test)), sep='|')"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split("|")
    )
    assert out[0] == DEFAULT_SOURCE and out[1] == "27" and int(out[2]) > 30_000


def test_load_dataset_refuses_block_size_zero(names_txt):
    from jaxninja.errors import ConfigError

    with pytest.raises(ConfigError, match="block_size"):
        load_dataset(names_txt, 0)


def test_names_package_source_means_the_default_even_with_names_txt(names_txt, monkeypatch):
    """A checkpoint of a default-data run records ``names-package``; evaluating it must use the
    census names again, not whatever $JAXNINJA_NAMES points at now."""
    monkeypatch.setenv("JAXNINJA_NAMES", str(names_txt))
    assert load_dataset(DEFAULT_SOURCE).source == DEFAULT_SOURCE
    assert load_dataset(recorded(RECORDED_DEFAULT)).source == DEFAULT_SOURCE
    assert load_dataset().source == str(names_txt)


@pytest.mark.parametrize("name", [RECORDED_DEFAULT, str(DEFAULT_SOURCE)])
def test_a_file_named_like_the_built_in_set_is_that_file(tmp_path, monkeypatch, name):
    """``--data names-package`` (or the built-in set's label) is a file like any other: only
    the built-in's own value, or a checkpoint's record of it, means the built-in set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text("ab\nba\naab\nbba\nabab\nbaba\n", encoding="utf-8")
    data = load_dataset(name, 3)
    assert data.source == name and not isinstance(data.source, Builtin)
    assert data.vocab.chars == "ab" and data.n_words == 6
    assert data.describe() == f"{name}, 6 words"


def test_the_built_in_set_is_named_for_a_person() -> None:
    assert DEFAULT_SOURCE == f"built-in US census first names ({len(default_words()):,})"
    data = load_dataset(DEFAULT_SOURCE, 3)  # whatever $JAXNINJA_NAMES says
    assert data.describe() == f"{DEFAULT_SOURCE}, {len(default_words()):,} words"
    assert recorded("/abs/names.txt") == "/abs/names.txt" and recorded(None) is None
