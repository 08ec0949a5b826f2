"""A checkpoint's stored configuration is input: it must name every size and be valid as flags
are, on every read (``load_checkpoint``, so ``sample``, ``evaluate`` and ``--resume`` alike). The
checksum is no defence: anyone can recompute it, as these tests do through ``save_checkpoint``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from jaxninja._cli import main
from jaxninja.config import name as config_name
from jaxninja.errors import CheckpointError, Name
from jaxninja.io import checkpoint as ck
from tests.helpers import make_checkpoint

READERS = (
    ["sample", "--checkpoint", "{ckpt}"],
    ["evaluate", "--checkpoint", "{ckpt}", "--data", "{words}"],
    ["train", "--resume", "{ckpt}", "--out", "{out}"],
)


def forged(tmp_path: Path, change) -> Path:
    """A valid checkpoint whose configuration ``change`` edited, its checksum recomputed."""
    ckpt = make_checkpoint()
    config = dict(ckpt.config)
    change(config)
    path = tmp_path / "run" / ck.CHECKPOINT_NAME
    path.parent.mkdir()
    ck.save_checkpoint(path, ckpt._replace(config=config))
    return path


def refused_by_every_reader(
    capsys, path: Path, words: Path, tmp_path: Path, match: str, setting: Name | None = None
) -> None:
    """Every reader refuses ``path`` in one line holding ``match``: from Python (its ``{}`` the
    ``setting``'s keyword) and from the command line (its flag)."""
    python, cli = match, match
    if setting is not None:
        python, cli = match.format(f"{setting.keyword}="), match.format(setting.flag)
    with pytest.raises(CheckpointError, match=re.escape(python)):
        ck.load_checkpoint(path)
    match = cli
    for template in READERS:
        fill = {"ckpt": str(path.parent), "words": str(words), "out": str(tmp_path / "out")}
        argv = [arg.format(**fill) for arg in template]
        assert main(argv) == 1, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("jaxninja: error:"), lines
        assert match in lines[0] and str(path) in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", ck.SIZE_KEYS)
def test_a_configuration_without_a_size_is_refused(capsys, tmp_path, words_file, size) -> None:
    path = forged(tmp_path, lambda config: config.pop(size))
    match = f"the stored configuration lacks {size}"
    refused_by_every_reader(capsys, path, words_file, tmp_path, match)


@pytest.mark.parametrize(
    ("change", "match", "field"),
    [
        (lambda c: c["schedule"].__setitem__("lr", -0.1), "{} must be a finite number > 0", "lr"),
        (lambda c: c["schedule"].__setitem__("lr", 1e39), "{} 1e+39 overflows to inf", "lr"),
        (lambda c: c.__setitem__("batch_size", 1), "{} must be an integer >= 2", "batch_size"),
        (lambda c: c.__setitem__("schedule", [1]), "schedule must be a JSON object", None),
    ],
)
def test_an_invalid_configuration_is_refused(
    capsys, tmp_path, words_file, change, match, field
) -> None:
    """The setting at fault: ``lr=`` from Python, ``--lr`` from the command line."""

    def edit(config: dict) -> None:
        config["schedule"] = dict(config["schedule"])
        change(config)

    path = forged(tmp_path, edit)
    setting = config_name(field) if field else None
    refused_by_every_reader(capsys, path, words_file, tmp_path, match, setting)


def test_the_valid_configuration_still_loads(tmp_path) -> None:
    path = forged(tmp_path, lambda config: None)
    assert ck.load_checkpoint(path).config == make_checkpoint().config


@pytest.mark.parametrize("dtype", [np.longdouble, np.float16])  # float128 on x86-64 Linux
def test_parameters_of_a_dtype_jax_does_not_train_are_refused(capsys, tmp_path, dtype) -> None:
    ckpt = make_checkpoint()
    params = type(ckpt.params)(*(p.astype(dtype) for p in ckpt.params))
    stats = type(ckpt.bn_stats)(*(s.astype(dtype) for s in ckpt.bn_stats))
    path = tmp_path / "run" / ck.CHECKPOINT_NAME
    path.parent.mkdir()
    ck.save_checkpoint(path, ckpt._replace(params=params, bn_stats=stats))
    match = f"parameters should share one dtype of float32, float64, got ['{np.dtype(dtype)}']"
    with pytest.raises(CheckpointError, match=re.escape(match)):
        ck.load_checkpoint(path)
    assert main(["sample", "--checkpoint", str(path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], lines


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_diverged_checkpoint_is_not_resumed(capsys, tmp_path, words_file, bad) -> None:
    """Its first step would be NaN and the failure would call it 'the last good checkpoint'."""
    ckpt = make_checkpoint()
    w1 = ckpt.params.W1.copy()
    w1[0, :3] = bad
    path = tmp_path / "run" / ck.CHECKPOINT_NAME
    path.parent.mkdir()
    ck.save_checkpoint(path, ckpt._replace(params=ckpt.params._replace(W1=w1)))
    argv = ["train", "--resume", str(path.parent), "--data", str(words_file)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "last good" not in lines[0], lines
    assert f"{path}: non-finite parameters: W1 (3 of {w1.size:,}); the run diverged" in lines[0]
    assert not (tmp_path / "out").exists()
