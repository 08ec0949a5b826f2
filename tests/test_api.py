"""The public API (issue 10): the lecture's whole workflow from Python gives the CLI's files and
numbers bit for bit; every configuration is validated wherever it comes from; imports are lazy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxninja
from jaxninja._cli import main
from jaxninja.config import CheckConfig, TrainConfig
from jaxninja.config import name as config_name
from jaxninja.data import DEFAULT_SOURCE
from jaxninja.errors import CheckpointError, ConfigError, Name
from jaxninja.io import checkpoint as ck
from jaxninja.training.rundir import TIMING_FIELDS
from tests.helpers import ROOT, SMALL, SMALL_FLAGS, names_setting

DOCUMENTED = {  # README's "From Python" lists exactly these
    "load_dataset", "Dataset", "Vocab", "Params", "Intermediates", "BNStats", "init_params",
    "forward_chunked", "loss_fused", "manual_backward", "reference_grads", "loss_and_grads",
    "ModelConfig", "CheckConfig", "TrainConfig", "cross_check", "CheckResult", "train",
    "TrainResult", "run_training", "RunResult", "RunOptions", "run_many", "ManyResult",
    "Checkpoint",
    "save_checkpoint", "load_checkpoint", "sample", "evaluate", "make_mesh", "replicated",
    "batch_sharding",
    "JaxninjaError", "ConfigError", "DataError", "CheckpointError", "TrainingError",
    "intermediate_grads", "cross_check_model", "cmp", "backward_source",
}  # fmt: skip
# test_train.py's small model: the jit caches are shared with it


def test_all_is_exactly_the_documented_names() -> None:
    assert set(jaxninja.__all__) == DOCUMENTED and len(jaxninja.__all__) == len(DOCUMENTED)
    for name in jaxninja.__all__:
        assert getattr(jaxninja, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        jaxninja.nonsense  # noqa: B018
    assert callable(jaxninja.train) and callable(jaxninja.sample)  # functions, not modules


def test_readme_lists_every_public_name() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in DOCUMENTED if f"`{name}`" not in section]
    assert not missing, f"README's 'From Python' does not name {missing}"


def test_import_is_lazy_and_cheap() -> None:
    """A fresh interpreter: ``import jaxninja`` loads none of jax, sympy, torch, matplotlib."""
    code = (
        "import sys, time; t = time.perf_counter(); import jaxninja; "
        "dt = time.perf_counter() - t; "
        "heavy = [m for m in ('jax', 'sympy', 'torch', 'matplotlib') if m in sys.modules]; "
        "print(dt, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split(" ", 1)
    assert out[1].strip() == "[]"
    assert float(out[0]) < 2.0  # the bound; measured ~0.02 s


def _arrays(folder: Path) -> dict[str, bytes]:
    with np.load(folder / ck.CHECKPOINT_NAME) as npz:
        return {name: npz[name].tobytes() for name in npz.files}


def _summary(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in TIMING_FIELDS}


def test_the_lecture_workflow_through_the_api_equals_the_cli(words_file, tmp_path, capsys):
    """check, train into a folder, resume, sample, evaluate: the same files and numbers."""
    table = jaxninja.cross_check(CheckConfig(data=str(words_file), against=("jax",)))
    assert table.ok and table.source == str(words_file)
    api, cli = tmp_path / "api", tmp_path / "cli"
    run = jaxninja.run_training(SMALL, api, data=words_file, samples=5, progress=False, log=None)
    common = ["--data", str(words_file), *SMALL_FLAGS, "--samples", "5"]
    assert main(["train", *common, "--steps", "1000", "--out", str(cli)]) == 0
    assert _arrays(api) == _arrays(cli)
    assert (api / "losses.npy").read_bytes() == (cli / "losses.npy").read_bytes()
    assert _summary(api) == _summary(cli) and run.summary["samples"] == _summary(cli)["samples"]
    assert run.split_losses == _summary(cli)["losses"] and not run.interrupted
    # resume both to step 1,500 (the settings given from Python: only what changes)
    again = jaxninja.run_training(
        {"steps": 1500}, api, resume=api, samples=5, progress=False, log=None
    )
    assert main(["train", "--resume", str(cli), "--steps", "1500", "--samples", "5"]) == 0
    assert again.result.state.step == 1500 and _arrays(api) == _arrays(cli)
    assert _summary(api) == _summary(cli)
    capsys.readouterr()
    names = jaxninja.sample(api, 7, seed=3)
    assert main(["sample", "--checkpoint", str(cli), "--num", "7", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == names
    evaluation = jaxninja.evaluate(api)
    assert main(["evaluate", "--checkpoint", str(cli)]) == 0
    shown = "  ".join(f"{k} {v:.4f}" for k, v in evaluation.losses.items())
    assert shown in capsys.readouterr().out and evaluation.step == 1500
    assert evaluation.losses == pytest.approx(_summary(cli)["losses"], abs=0)


def test_train_in_memory_returns_parameters_losses_timings_and_split_losses(words_file):
    result = jaxninja.train(SMALL, jaxninja.load_dataset(words_file))
    assert result.params.W1.shape == (12, 16) and result.losses.shape == (1000,)
    assert result.wall_s > 0 and result.compile_s >= 0
    assert set(result.split_losses) == {"train", "val", "test"} and result.bn_stats is not None


BAD_FIELDS = [  # (field, value, the line: {} where the field is named)
    ("n_embd", 0, "^{} must be an integer >= 1"),
    ("n_hidden", -3, "^{} must be an integer >= 1"),
    ("block_size", 0, "^{} must be an integer >= 1"),
    ("batch_size", 1, "^{} must be an integer >= 2"),
    ("seed", -1, r"^{} must be an integer in \[0"),
    ("seed", 2**32, r"^{} must be an integer in \[0"),
    ("dtype", "float16", "^unknown {} 'float16'"),
    ("n_hidden", "200", "^{} must be an integer"),  # text where a number belongs (forged JSON)
    ("n_hidden", True, "^{} must be an integer"),
]
BAD_TRAIN = [
    ("steps", -1, "^{} must be an integer >= 0"),
    ("steps", 1.5, "^{} must be an integer >= 0"),
    ("lr", -0.1, "^{} must be a finite number > 0"),
    ("lr", 0.0, "^{} must be a finite number > 0"),
    ("lr", "0.1", "^{} must be a number"),
    ("lr", float("nan"), "^{} must be a finite number > 0"),
    ("lr", 1e-50, "^{} 1e-50 underflows to 0 in float32"),
    ("lr_decay", 1e-46, "^{} = 1e-47 underflows to 0 in float32"),  # 0.1 x 1e-46 in float32
    ("lr", 1e39, r"^{} 1e\+39 overflows to inf in float32"),  # finite as a Python float
    ("lr_decay", 1e40, r"^{} = 1e\+39 overflows to inf in float32"),
    ("lr_decay_step", -5, "^{} must be an integer >= 0"),
    ("lr_decay", 0, "^{} must be a finite number > 0"),
]
BAD_CHECK = [
    ("against", ("jax", "tf"), "^unknown {} 'tf'"),
    ("against", "jax", "^{} must be a non-empty list"),
    ("jit", "yes", "^{} must be true or false"),
    ("torch_tanh", "other", "^unknown {} 'other'"),
    ("devices", 0, "^{} must be an integer >= 1"),
    ("data", 3, r"^{} must be a path \(text\)"),
]
PRODUCT = Name("lr * lr_decay", "--lr x --lr-decay")  # the decayed rate: both fields at once


def _named(field: str, pattern: str) -> Name:
    """The setting a BAD_* line names: its field, or the decayed rate for a ``{} =`` line."""
    return PRODUCT if pattern.startswith("^{} =") else config_name(field)


@pytest.mark.parametrize("field, value, pattern", BAD_FIELDS + BAD_TRAIN)
def test_invalid_train_config_is_a_config_error(field, value, pattern) -> None:
    """From Python the line names the keyword (``batch_size=``), from the CLI the flag."""
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    names_setting(info.value, pattern, *_named(field, pattern))


@pytest.mark.parametrize("field, value, pattern", BAD_FIELDS + BAD_CHECK)
def test_invalid_check_config_is_a_config_error(field, value, pattern) -> None:
    with pytest.raises(ConfigError) as info:
        CheckConfig(**{field: value})
    names_setting(info.value, pattern, *_named(field, pattern))


def test_configs_keep_their_own_defaults() -> None:
    assert (TrainConfig().n_hidden, TrainConfig().seed) == (200, 2147483647)  # Exercise 4
    assert (CheckConfig().n_hidden, CheckConfig().seed) == (64, 42)  # Exercise 1
    with pytest.raises(ConfigError, match="^batch_size= must be"):
        TrainConfig().replace(batch_size=1)  # changes are validated too


@pytest.mark.parametrize(
    "key, value",
    [("lr", -0.1), ("lr", "fast"), ("seed", -7), ("steps", 2.5), ("lr_decay_step", None)],
)  # fmt: skip
def test_a_forged_checkpoint_config_is_refused(words_file, tmp_path, key, value) -> None:
    """The checksum is easy to recompute: a checkpoint's settings are validated like flags."""
    out = tmp_path / "run"
    jaxninja.run_training(
        SMALL.replace(steps=0), out, data=words_file, samples=0, progress=False, log=None
    )
    ckpt = ck.load_checkpoint(out)
    config = dict(ckpt.config)
    if key in ("lr", "lr_decay_step"):
        config["schedule"] = dict(config["schedule"]) | {
            {"lr": "lr", "lr_decay_step": "decay_step"}[key]: value
        }
    else:
        config[key] = value
    ck.save_checkpoint(out / ck.CHECKPOINT_NAME, ckpt._replace(config=config))  # valid checksum
    match = f"stored configuration is invalid: {key}= must be"  # Python: the field's keyword
    with pytest.raises(CheckpointError, match=match):  # every reader: resume, sample, evaluate
        jaxninja.run_training(None, tmp_path / "next", resume=out, progress=False, log=None)
    with pytest.raises(CheckpointError, match=match):
        jaxninja.sample(out, 2)
    with pytest.raises(CheckpointError, match=match):
        jaxninja.evaluate(out)


def test_data_does_not_depend_on_the_working_directory(tmp_path, monkeypatch, capsys) -> None:
    """A parent folder holding shared/data/names.txt is not looked at: the default data set."""
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "names.txt").write_text("ab\nba\naab\nbba\nabab\nbaba\n")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv("JAXNINJA_NAMES", raising=False)
    assert jaxninja.load_dataset().source == DEFAULT_SOURCE
    assert main(["check", "--against", "jax", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == DEFAULT_SOURCE
