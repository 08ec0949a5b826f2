"""The generated backward trains: ``jaxninja backward --model wavenet.py:part5 --out FILE``
writes a model file that carries the original's training settings and hooks (train_defaults,
running statistics, logits), and ``train --model FILE`` trains with it as with the hand-written
backward, ``--check-every`` auditing it against ``jax.grad``."""

from __future__ import annotations

import numpy as np
import pytest

from jaxninja._cli import main
from jaxninja.io.checkpoint import load_checkpoint
from jaxninja.models.protocol import load_model
from jaxninja.training.run import run_training
from tests.helpers import ROOT

PART5 = f"{ROOT / 'examples' / 'models' / 'wavenet.py'}:part5"


@pytest.mark.slow
def test_the_generated_part5_backward_trains_as_the_hand_written_one(tmp_path, names_txt, capsys):
    out = tmp_path / "generated.py"
    assert main(["backward", "--model", PART5, "--out", str(out)]) == 0
    generated = load_model(out)
    assert dict(generated.train_defaults)["lr_decay_step"] == 150_000
    assert set(generated.hooks) == {"stats_init", "stats_update", "logits"}
    quiet = {"data": names_txt, "samples": 0, "progress": False, "log": None}
    config = {"steps": 600}
    mine = run_training(config, tmp_path / "gen", model=out, check_every=200, **quiet)
    hand = run_training(config, tmp_path / "hand", model=PART5, **quiet)
    a, b = load_checkpoint(tmp_path / "gen"), load_checkpoint(tmp_path / "hand")
    for name in a.params:  # 600 SGD steps apart only by the backwards' rounding
        scale = float(np.abs(b.params[name]).max())
        assert np.abs(a.params[name] - b.params[name]).max() <= 1e-4 * scale, name
    assert abs(mine.split_losses["val"] - hand.split_losses["val"]) <= 1e-4
