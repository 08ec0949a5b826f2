"""One configuration, checked in one place: the model's sizes shared by ``check`` and ``train``.

:class:`ModelConfig` holds what both commands size the model with (widths, context, batch, seed,
dtype); :class:`TrainConfig` (Exercise 4's defaults) and :class:`CheckConfig` (Exercise 1's)
extend it. Every config validates itself when it is made (:meth:`ModelConfig.validate`), so an
invalid one cannot exist: a ``ConfigError`` comes from the Python API, from the CLI's flags and
from a configuration read back from a checkpoint alike. :data:`FLAGS` holds each field's flag and
help text; the CLI builds its argparse flags from it (``jaxninja._cli.flags``), so defaults live
in the config classes and nowhere else.

Nothing here imports jax: flags can be checked before jax starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Self

from jaxninja import checks
from jaxninja.errors import ConfigError, Name

DEFAULT_OUT = "out"
"""The run folder ``train`` writes when not told (``--out``), and so where ``sample`` and
``evaluate`` look when not told (``--checkpoint``)."""


class Flag(NamedTuple):
    """A config field as the CLI spells it: its flag, argparse type, help and check (which names
    the field by a :class:`Name`: its keyword from Python, its flag from the command line)."""

    flag: str
    type: Callable[[str], Any]
    help: str
    check: Callable[[Any, checks.Label], Any]


def name(field: str) -> Name:
    """The config field ``field`` by both its spellings (keyword ``field=``, its flag)."""
    return Name(field, FLAGS[field].flag)


def _check_choice(choices: tuple[str, ...]) -> Callable[[Any, checks.Label], str]:
    def check(value: Any, flag: checks.Label) -> str:
        if value not in choices:
            raise ConfigError("unknown ", flag, f" {value!r} (choose from {', '.join(choices)})")
        return value

    return check


def _check_against(value: Any, flag: checks.Label) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list) or not value:
        raise ConfigError(flag, f" must be a non-empty list of references, got {value!r}")
    return tuple(checks.check_against(name, flag) for name in value)


def _check_bool(value: Any, flag: checks.Label) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(flag, f" must be true or false, got {value!r}")
    return value


def _check_data(value: Any, flag: checks.Label) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(flag, f" must be a path (text), got {value!r}")
    return value


FLAGS: dict[str, Flag] = {
    "n_embd": Flag("--n-embd", int, "embedding size per character", checks.check_width),
    "n_hidden": Flag(
        "--n-hidden", int, "hidden units (BatchNorm'd tanh layer)", checks.check_width
    ),
    "block_size": Flag("--block-size", int, "characters of context", checks.check_block_size),
    "batch_size": Flag("--batch-size", int, "examples per step n", checks.check_batch_size),
    "seed": Flag("--seed", int, "seed of parameters and batches", checks.check_seed),
    "dtype": Flag("--dtype", str, "float32 or float64", _check_choice(checks.DTYPES)),
    "steps": Flag("--steps", int, "total SGD steps", checks.check_steps),
    "lr": Flag("--lr", float, "learning rate", checks.check_learning_rate),
    "lr_decay_step": Flag(
        "--lr-decay-step",
        int,
        "step from which lr is multiplied by --lr-decay",
        checks.check_steps,
    ),
    "lr_decay": Flag(
        "--lr-decay",
        float,
        "learning-rate factor from --lr-decay-step on",
        checks.check_positive_float,
    ),
    "data": Flag("--data", str, "word list, one word a line", _check_data),
    "against": Flag("--against", str, "references: jax, torch", _check_against),
    "jit": Flag("--jit", bool, "jit-compile forward and both backwards", _check_bool),
    "torch_tanh": Flag(
        "--torch-tanh",
        str,
        "torch manual backward's tanh line",
        _check_choice(("fixed", "notebook")),
    ),
    "max_data_bytes": Flag(
        "--max-data-bytes",
        int,
        "read at most N bytes of words ('--data -' reads stdin)",
        checks.check_byte_count,
    ),
    "devices": Flag("--devices", int, "devices to split the batch over", checks.check_devices),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model's sizes, the batch, the seed and the dtype (the fields check and train share).

    Made configs are always valid: construction runs :meth:`validate`.
    """

    n_embd: int = 10  # dimensions of a character's embedding
    n_hidden: int = 64  # neurons in the BatchNorm'd tanh layer
    block_size: int = 3  # characters of context used to predict the next one
    batch_size: int = 32  # examples per batch (BatchNorm's Bessel variance needs >= 2)
    seed: int = 42
    dtype: str = "float32"  # float32 or float64 (float64 switches on jax_enable_x64 when used)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (type and range); raise :class:`ConfigError` naming the first bad
        one (``field=`` from Python, its flag from the command line). Used by every entry point,
        checkpoints included."""
        for field in dataclasses.fields(self):
            flag = FLAGS.get(field.name)
            if flag is not None:
                flag.check(getattr(self, field.name), name(field.name))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated as any new config."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON's types: tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.fields().items()}

    def fields(self) -> dict[str, Any]:
        """Every field by name, as the config holds it."""
        return dataclasses.asdict(self)

    # NamedTuple's spellings, which callers used before the public ones existed
    _replace = replace
    _asdict = fields


@dataclasses.dataclass(frozen=True)
class TrainConfig(ModelConfig):
    """A training run's settings; the defaults are the lecture's Exercise 4."""

    n_hidden: int = 200
    seed: int = 2147483647  # the lecture's torch.Generator seed; here a jax.random.key
    steps: int = 200_000  # SGD steps in total
    lr: float = 0.1  # learning rate ...
    lr_decay_step: int = 100_000  # ... multiplied by lr_decay from this step on
    lr_decay: float = 0.1

    def validate(self) -> None:
        super().validate()
        checks.check_lr_representable(self.lr, self.lr_decay, self.dtype)

    @property
    def schedule(self):
        """The learning-rate schedule as :class:`jaxninja.lecture.step.Schedule` (a jit static)."""
        from jaxninja.lecture.step import Schedule

        return Schedule(float(self.lr), int(self.lr_decay_step), float(self.lr_decay))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in checkpoints and summary.json (schedule nested)."""
        d = self.fields()
        lr, decay_step, decay = (d.pop(k) for k in ("lr", "lr_decay_step", "lr_decay"))
        return d | {"schedule": {"lr": lr, "decay_step": decay_step, "decay": decay}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`, validated like any config (a checkpoint is untrusted
        input); keys that are not settings (e.g. ``data``) are ignored."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a configuration must be a JSON object, got {type(d).__name__}")
        flat = {k: v for k, v in d.items() if k in cls.field_names()}
        sched = d.get("schedule", {})
        if not isinstance(sched, Mapping):
            raise ConfigError(f"schedule must be a JSON object, got {type(sched).__name__}")
        for key, field in (("lr", "lr"), ("decay_step", "lr_decay_step"), ("decay", "lr_decay")):
            if key in sched:
                flat[field] = sched[key]
        return cls(**flat)


@dataclasses.dataclass(frozen=True)
class CheckConfig(ModelConfig):
    """What ``check`` compares: Exercise 1's setup (n_hidden 64, seed 42) and the references."""

    data: str | None = None
    max_data_bytes: int = 16 * 2**20  # jaxninja.data.MAX_DATA_BYTES
    against: tuple[str, ...] = ("jax", "torch")
    jit: bool = False
    torch_tanh: str = "fixed"
    devices: int = 1  # > 1: also the batch split over this many devices (parallel.sharded_rows)

    def validate(self) -> None:
        super().validate()
        checks.check_divisible(self.batch_size, self.devices)


RUN_FIELDS = ("n_embd", "n_hidden", "block_size", "batch_size", "lr", "lr_decay_step", "lr_decay")
RUN_FIELDS += ("seed", "dtype")
"""The fields that define a run: on resume they come from the checkpoint and may not change."""
