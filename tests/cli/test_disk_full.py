"""A checkpoint that cannot be written (the disk is full) ends the run in one line that names the
step it was saving and the checkpoint still on disk, with its step. The fault is injected where
the file's bytes are written, so the real atomic-write path turns it into the error."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from jaxninja._cli import main
from jaxninja.io import atomic
from jaxninja.io import checkpoint as ck
from jaxninja.io.checkpoint import load_checkpoint
from tests.helpers import SMALL_FLAGS


def fill_disk_at(monkeypatch, call: int) -> None:
    """The ``call``-th checkpoint write onwards fails as a full disk does."""
    calls = [0]

    def write_atomic(path, write, what="file"):
        calls[0] += 1
        if calls[0] < call:
            return atomic.write_atomic(path, write, what)

        def full(f) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return atomic.write_atomic(path, full, what)

    monkeypatch.setattr(ck, "write_atomic", write_atomic)


@pytest.mark.parametrize(
    ("call", "kept"),
    [
        (3, "the last good checkpoint (step 1,000) is kept in"),  # the 2nd boundary's first save
        (1, "no checkpoint was saved"),
    ],
)
def test_disk_full_names_the_step_and_the_kept_checkpoint(
    words_file: Path, tmp_path: Path, capsys, monkeypatch, call: int, kept: str
) -> None:
    out = tmp_path / "run"
    fill_disk_at(monkeypatch, call)
    argv = ["train", *SMALL_FLAGS, "--data", str(words_file), "--steps", "3000"]
    code = main([*argv, "--checkpoint-every", "1000", "--samples", "0", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    step = 2000 if call == 3 else 1000
    assert lines[0].startswith(f"jaxninja: error: {out / ck.CHECKPOINT_NAME}: cannot write"), lines
    assert f"(No space left on device) at step {step:,}; {kept}" in lines[0], lines
    if call == 3:
        assert load_checkpoint(out).step == 1000 and str(out / ck.CHECKPOINT_NAME) in lines[0]
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
