"""jaxninja: makemore Part 4 (Becoming a Backprop Ninja) in JAX, as a library and a command.

The public API, each name one import away (see README's "From Python")::

    import jaxninja

    data = jaxninja.load_dataset()                       # --data / $JAXNINJA_NAMES / default
    table = jaxninja.cross_check()                       # Exercise 1, every row, three ways
    run = jaxninja.run_training(jaxninja.TrainConfig(steps=2_000), "runs/quick")
    print(jaxninja.sample("runs/quick", 5), jaxninja.evaluate("runs/quick").losses)

Names are imported lazily (PEP 562): ``import jaxninja`` loads no jax, sympy, torch or
matplotlib, so a command can set up its signal handling before the heavy imports start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what editors and type checkers see; at run time __getattr__ imports
    from jaxninja.backward import backward_source
    from jaxninja.config import CheckConfig, ModelConfig, TrainConfig
    from jaxninja.data import Dataset, Vocab, load_dataset
    from jaxninja.devices.parallel import batch_sharding, make_mesh, replicated
    from jaxninja.errors import (
        CheckpointError,
        ConfigError,
        DataError,
        JaxninjaError,
        TrainingError,
    )
    from jaxninja.gradcheck.diagnose import cmp
    from jaxninja.gradcheck.lecture_check import CheckResult, cross_check
    from jaxninja.gradcheck.model_check import cross_check_model
    from jaxninja.gradcheck.taps import intermediate_grads
    from jaxninja.io.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from jaxninja.lecture.backward import manual_backward, reference_grads
    from jaxninja.lecture.fused import loss_and_grads
    from jaxninja.lecture.model import (
        BNStats,
        Intermediates,
        Params,
        forward_chunked,
        init_params,
        loss_fused,
    )
    from jaxninja.training.inference import evaluate, sample
    from jaxninja.training.loop import TrainResult, train
    from jaxninja.training.many import ManyResult, run_many
    from jaxninja.training.run import RunOptions, RunResult, run_training

_EXPORTS: dict[str, str] = {
    # data and the model
    "load_dataset": "jaxninja.data",
    "Dataset": "jaxninja.data",
    "Vocab": "jaxninja.data",
    "Params": "jaxninja.lecture.model",
    "Intermediates": "jaxninja.lecture.model",
    "BNStats": "jaxninja.lecture.model",
    "init_params": "jaxninja.lecture.model",
    "forward_chunked": "jaxninja.lecture.model",
    "loss_fused": "jaxninja.lecture.model",
    # the backward, by hand and by autodiff
    "manual_backward": "jaxninja.lecture.backward",
    "reference_grads": "jaxninja.lecture.backward",
    "loss_and_grads": "jaxninja.lecture.fused",
    # configuration
    "ModelConfig": "jaxninja.config",
    "CheckConfig": "jaxninja.config",
    "TrainConfig": "jaxninja.config",
    # the three jobs
    "cross_check": "jaxninja.gradcheck.lecture_check",
    "CheckResult": "jaxninja.gradcheck.lecture_check",
    # your own model: gradients of intermediates, its check table, a cmp that diagnoses
    "intermediate_grads": "jaxninja.gradcheck.taps",
    "cross_check_model": "jaxninja.gradcheck.model_check",
    "cmp": "jaxninja.gradcheck.diagnose",
    # your model's backward, written for you (every rule proved)
    "backward_source": "jaxninja.backward",
    "train": "jaxninja.training.loop",
    "TrainResult": "jaxninja.training.loop",
    "run_training": "jaxninja.training.run",
    "RunResult": "jaxninja.training.run",
    "RunOptions": "jaxninja.training.run",
    "run_many": "jaxninja.training.many",
    "ManyResult": "jaxninja.training.many",
    # checkpoints and their use
    "Checkpoint": "jaxninja.io.checkpoint",
    "save_checkpoint": "jaxninja.io.checkpoint",
    "load_checkpoint": "jaxninja.io.checkpoint",
    "sample": "jaxninja.training.inference",
    "evaluate": "jaxninja.training.inference",
    # several devices
    "make_mesh": "jaxninja.devices.parallel",
    "replicated": "jaxninja.devices.parallel",
    "batch_sharding": "jaxninja.devices.parallel",
    # errors
    "JaxninjaError": "jaxninja.errors",
    "ConfigError": "jaxninja.errors",
    "DataError": "jaxninja.errors",
    "CheckpointError": "jaxninja.errors",
    "TrainingError": "jaxninja.errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jaxninja' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
