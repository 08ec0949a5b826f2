"""Shared fixtures: where names.txt is, the notebook's dataset, and float64 switched on safely."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

from jaxninja.data import default_words, load_dataset


def names_path() -> Path | None:
    """names.txt from $JAXNINJA_NAMES (CI sets it; nothing else is searched)."""
    env = os.environ.get("JAXNINJA_NAMES")
    return Path(env) if env and Path(env).is_file() else None


@pytest.fixture(scope="session")
def names_txt() -> Path:
    path = names_path()
    if path is None:
        pytest.skip("names.txt not found: set JAXNINJA_NAMES")
    return path


@pytest.fixture(scope="session")
def words_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline default word list (5,163 census names) as a file, for ``--data``."""
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(default_words()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def names_dataset(names_txt):
    """The notebook's dataset (block_size 3), loaded once per session."""
    return load_dataset(names_txt, 3)


def _x64_flag(value: bool):
    """Set jax_enable_x64 for one test and put it back afterwards, so no other test sees it."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", value)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture
def x64():
    """float64 for one test; other tests keep float32 defaults."""
    yield from _x64_flag(True)


@pytest.fixture
def x64_off():
    """x64 off for one test (as in a fresh process), whatever earlier tests switched on."""
    yield from _x64_flag(False)
