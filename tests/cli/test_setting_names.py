"""A setting's error names it as its caller wrote it (issue 25's friction list): ``samples=`` from
Python, ``--samples`` from the command line. One check, one error, two spellings: every
validated field of the configurations and every checked option of train, sample and evaluate,
each called both ways with the same bad value. A setting the command line cannot get wrong (a
Python type) is listed with its reason, so a new field cannot go untested."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import jaxninja
from jaxninja._cli import main
from jaxninja.config import FLAGS, CheckConfig, TrainConfig
from jaxninja.errors import JaxninjaError
from tests.helpers import SMALL


class Case(NamedTuple):
    keyword: str
    flag: str
    python: Callable[[Path], Any]  # the Python call, given a fresh folder
    argv: Callable[[Path], list[str]] | None  # the same bad value on the command line
    pattern: str  # what the line says ({} where the setting goes)


def _train_config(field: str, value: Any) -> Callable[[Path], Any]:
    return lambda tmp: TrainConfig(**{field: value})


def _check_config(field: str, value: Any) -> Callable[[Path], Any]:
    return lambda tmp: CheckConfig(**{field: value})


def _run(**keywords: Any) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        given = dict(keywords)
        out = given.pop("out", tmp / "run")
        return jaxninja.run_training(SMALL, out, progress=False, log=None, **given)

    return call


def _many(**keywords: Any) -> Callable[[Path], Any]:
    return lambda tmp: jaxninja.run_many(SMALL, tmp / "runs", progress=False, log=None, **keywords)


def _train(*flags: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["train", "--out", str(tmp / "run"), "--steps", "0", *flags]


INT = "{} must be an integer >= {}"
CASES = [
    # the configurations' fields (TrainConfig from train, CheckConfig from check)
    Case("n_embd", "--n-embd", _train_config("n_embd", 0), _train("--n-embd", "0"),
         "^{} must be an integer >= 1, got 0"),
    Case("n_hidden", "--n-hidden", _train_config("n_hidden", 0), _train("--n-hidden", "0"),
         "^{} must be an integer >= 1, got 0"),
    Case("block_size", "--block-size", _train_config("block_size", 0),
         _train("--block-size", "0"), "^{} must be an integer >= 1, got 0"),
    Case("batch_size", "--batch-size", _train_config("batch_size", 1),
         _train("--batch-size", "1"), "^{} must be an integer >= 2, got 1 .*n - 1"),
    Case("seed", "--seed", _train_config("seed", -1), _train("--seed=-1"),
         r"^{} must be an integer in \[0, 2\*\*32\), got -1"),
    Case("dtype", "--dtype", _train_config("dtype", "float16"), _train("--dtype", "float16"),
         "^unknown {} 'float16'"),
    Case("steps", "--steps", _train_config("steps", -1),
         lambda tmp: ["train", "--out", str(tmp), "--steps=-1"], "^{} must be an integer >= 0"),
    Case("lr", "--lr", _train_config("lr", -0.1), _train("--lr=-0.1"),
         "^{} must be a finite number > 0, got -0.1"),
    Case("lr", "--lr", _train_config("lr", 1e39), _train("--lr", "1e39"),
         r"^{} 1e\+39 overflows to inf in float32"),
    Case("lr_decay_step", "--lr-decay-step", _train_config("lr_decay_step", -5),
         _train("--lr-decay-step=-5"), "^{} must be an integer >= 0, got -5"),
    Case("lr_decay", "--lr-decay", _train_config("lr_decay", 0.0), _train("--lr-decay", "0"),
         "^{} must be a finite number > 0, got 0"),
    Case("lr * lr_decay", "--lr x --lr-decay", _train_config("lr_decay", 1e40),
         _train("--lr-decay", "1e40"), r"^{} = 1e\+39 overflows to inf in float32"),
    Case("torch_tanh", "--torch-tanh", _check_config("torch_tanh", "other"),
         lambda tmp: ["check", "--torch-tanh", "other"], "^unknown {} 'other'"),
    Case("against", "--against", _check_config("against", ("jax", "tf")),
         lambda tmp: ["check", "--against", "jax,tf"], "^unknown {} 'tf'"),
    Case("devices", "--devices", _check_config("devices", 0),
         lambda tmp: ["check", "--devices", "0"], "^{} must be an integer >= 1, got 0"),
    Case("max_data_bytes", "--max-data-bytes", _check_config("max_data_bytes", 0),
         lambda tmp: ["check", "--max-data-bytes", "0"], "^{} must be an integer >= 1, got 0"),
    Case("batch_size", "--batch-size", _check_config("devices", 3),
         lambda tmp: ["check", "--devices", "3"], "^{} 32 does not divide evenly over 3"),
    # the options of a run (run_training / run_many keywords, train's flags)
    Case("samples", "--samples", _run(samples=-1), _train("--samples=-1"),
         "^{} must be an integer >= 0, got -1"),
    Case("check_every", "--check-every", _run(check_every=-1), _train("--check-every=-1"),
         "^{} must be an integer >= 0, got -1"),
    Case("checkpoint_every", "--checkpoint-every", _run(checkpoint_every=-1),
         _train("--checkpoint-every=-1"), "^{} must be an integer >= 0, got -1"),
    Case("val_every", "--val-every", _run(val_every=-1), _train("--val-every=-1"),
         "^{} must be an integer >= 0, got -1"),
    Case("max_data_bytes", "--max-data-bytes", _run(max_data_bytes=0),
         _train("--max-data-bytes", "0"), "^{} must be an integer >= 1, got 0"),
    Case("devices", "--devices", _run(devices=0), _train("--devices", "0"),
         "^{} must be an integer >= 1, got 0"),
    Case("out", "--out", _run(out=""), lambda tmp: ["train", "--out", ""],
         "^{} '': an empty path"),
    Case("seeds", "--seeds", _many(seeds=0), _train("--seeds", "0"),
         "^{} must be an integer >= 1, got 0"),
    Case("group", "--group", _many(seeds=2, group=0), _train("--seeds", "2", "--group", "0"),
         "^{} must be an integer >= 1, got 0"),
    # sample and evaluate (checked before the checkpoint is read)
    Case("num", "--num", lambda tmp: jaxninja.sample(tmp, 0),
         lambda tmp: ["sample", "--checkpoint", str(tmp), "--num", "0"],
         "^{} must be an integer >= 1, got 0"),
    Case("seed", "--seed", lambda tmp: jaxninja.sample(tmp, 2, seed=-1),
         lambda tmp: ["sample", "--checkpoint", str(tmp), "--seed=-1"],
         r"^{} must be an integer in \[0, 2\*\*32\)"),
    Case("max_data_bytes", "--max-data-bytes", lambda tmp: jaxninja.evaluate(tmp, None, 0),
         lambda tmp: ["evaluate", "--checkpoint", str(tmp), "--max-data-bytes", "0"],
         "^{} must be an integer >= 1, got 0"),
    # settings the command line cannot get wrong: a Python type only (argparse gives text/bool)
    Case("jit", "--jit", _check_config("jit", "yes"), None, "^{} must be true or false"),
    Case("data", "--data", _check_config("data", 3), None, r"^{} must be a path \(text\)"),
    Case("chunk_steps", "chunk_steps",
         lambda tmp: jaxninja.train(SMALL, None, chunk_steps=0), None,
         "^{} must be an integer >= 1, got 0"),
]  # fmt: skip


def _id(case: Case) -> str:
    return f"{case.keyword}-{case.argv is not None and case.argv(Path('x'))[0] or 'python'}"


def test_every_field_of_every_configuration_is_covered() -> None:
    """A field added to the configurations needs a case here (both spellings, or a reason)."""
    assert set(FLAGS) <= {case.keyword for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_python_names_the_keyword(case: Case, tmp_path: Path) -> None:
    with pytest.raises(JaxninjaError) as info:
        case.python(tmp_path)
    message = str(info.value)
    spelled = f"{case.keyword}=" if case.keyword.isidentifier() else case.keyword
    assert re.search(case.pattern.replace("{}", re.escape(spelled)), message), message
    assert case.flag not in message or case.flag == case.keyword, message


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.argv], ids=[_id(c) for c in CASES if c.argv]
)
def test_the_command_line_names_the_flag(case: Case, tmp_path: Path, capsys) -> None:
    assert main(case.argv(tmp_path)) == 2
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.startswith("jaxninja: error: "), line
    message = line.removeprefix("jaxninja: error: ")
    assert re.search(case.pattern.replace("{}", re.escape(case.flag)), message), message
    assert f"{case.keyword.split()[0]}=" not in message, message
