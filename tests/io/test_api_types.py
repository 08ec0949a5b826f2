"""Wrong types passed to the Python API are one line naming the keyword the caller wrote (an
``ArgumentError``: a ``ConfigError`` and a ``TypeError``), never a traceback from deep inside.
Every refusal here comes before any training or file is touched."""

from __future__ import annotations

import pytest

import jaxninja
from jaxninja.config import TrainConfig
from jaxninja.errors import ArgumentError, ConfigError

CASES = [
    (lambda t: jaxninja.train(steps="10"), r"train\(\) takes no steps= \(settings go in"),
    (lambda t: jaxninja.train("x"), "config= must be a TrainConfig, got str 'x'"),
    (lambda t: jaxninja.train(TrainConfig(steps=5), "d"), "dataset= must be a Dataset"),
    (lambda t: jaxninja.run_training(5, t), "config= must be TrainConfig or dict, got int 5"),
    (lambda t: jaxninja.run_many([1], t), r"config= must be TrainConfig or dict, got list \[1\]"),
    (lambda t: jaxninja.run_training({"steps": 5}, 5), "out= must be a path .*got int 5"),
    (lambda t: jaxninja.run_training({"steps": 5}, t, resume=5), "resume= must be a path"),
    (lambda t: jaxninja.sample(5), "checkpoint= must be a path .*got int 5"),
    (lambda t: jaxninja.evaluate(None), "checkpoint= must be a path .*got NoneType None"),
    (lambda t: jaxninja.load_checkpoint(b"x" * 100), r"got bytes b'xxx.*\.\.\.$"),
]


@pytest.mark.parametrize(("call", "match"), CASES)
def test_a_wrong_type_names_the_keyword(tmp_path, call, match) -> None:
    with pytest.raises(ArgumentError, match=match) as info:
        call(tmp_path / "out")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ConfigError)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200
    assert not (tmp_path / "out").exists()
