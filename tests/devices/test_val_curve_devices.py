"""The validation curve of a run over several devices: each point is what ``evaluate`` gives at
that step, as for a run on one device (README, loss.png). JAX fixes its device count when it
starts, so the run happens in a subprocess with two simulated CPU devices (this file's
``__main__``), which prints one JSON line; the run over two processes is in
``test_distributed.py``'s launch test (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT, SMALL


def _child(words: str, out: str) -> None:
    """Train SMALL over 2 devices with a point every 500 steps, then evaluate the run."""
    import jaxninja

    quiet = {"progress": False, "log": None, "samples": 0}
    jaxninja.run_training(SMALL, out, data=words, devices=2, val_every=500, **quiet)
    curve = np.load(Path(out) / "val_losses.npy")
    val = jaxninja.evaluate(out).losses["val"]
    print(json.dumps({"curve": curve.tolist(), "evaluate": val}))


@pytest.mark.slow  # a fresh process compiles the 2-device chunk and the evaluation: ~30 s loaded
def test_a_run_over_two_devices_has_the_curve_evaluate_gives(words_file: Path, tmp_path: Path):
    env = os.environ | {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "tests.devices.test_val_curve_devices"]
    done = subprocess.run(
        [*args, str(words_file), str(tmp_path / "run")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.splitlines()[-1])
    curve = np.asarray(result["curve"])
    assert curve[:, 0].tolist() == [500, 1000]
    assert curve[-1, 1] == result["evaluate"]  # bit for bit (JSON keeps a float64 exactly)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
