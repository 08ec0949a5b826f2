"""The exceptions jaxninja raises: one base class, so the CLI can turn any of them into one line.

Library code raises a specific subclass with a message that names the file, line, character or
value at fault. The CLI prints ``jaxninja: error: <message>`` and exits with ``exit_code``.

A setting has two spellings: the keyword a Python caller wrote (``samples=``) and the flag of the
command line (``--samples``). A check does not know which one its caller used, so it names the
setting by its :class:`Name` (both spellings) and the error keeps it as a part of its message:
``str(err)`` (what Python shows) spells the keyword, :meth:`JaxninjaError.render` with
``cli=True`` (what the command line prints) the flag. Both are right by construction; nothing
rewrites a finished message.
"""

from __future__ import annotations

from typing import NamedTuple


class Name(NamedTuple):
    """A setting as Python and the command line spell it: ``Name("samples", "--samples")``."""

    keyword: str  # train(samples=...), run_training(config, out, resume=...), Config(lr=...)
    flag: str  # --samples, --out, --resume, --lr

    def spelled(self, cli: bool) -> str:
        """``--flag`` for the command line; ``keyword=`` for Python (an expression that is not a
        keyword, such as ``lr * lr_decay``, as it is)."""
        if cli:
            return self.flag
        return f"{self.keyword}=" if self.keyword.isidentifier() else self.keyword


class JaxninjaError(Exception):
    """Base of every error jaxninja raises on purpose.

    Made from ``parts``: text, :class:`Name` (a setting, spelled by whoever shows the error) and
    other jaxninja errors (a cause quoted inside this one keeps its own names)."""

    exit_code = 1

    def __init__(self, *parts: str | Name | JaxninjaError):
        self.parts = parts
        super().__init__(_joined(parts, cli=False))

    def render(self, cli: bool = False) -> str:
        """The message with every setting spelled as a flag (``cli``) or a keyword (``str``)."""
        if not cli or not any(isinstance(p, Name | JaxninjaError) for p in self.parts):
            return str(self)  # a plain message (or one a subclass rewrote): as it stands
        return _joined(self.parts, cli)


def _joined(parts: tuple, cli: bool) -> str:
    def one(part) -> str:
        if isinstance(part, Name):
            return part.spelled(cli)
        if isinstance(part, JaxninjaError):
            return part.render(cli)
        return str(part)

    return "".join(one(p) for p in parts)


class DataError(JaxninjaError):
    """The word list cannot be used (missing, unreadable, not UTF-8, bad characters, too small)."""

    exit_code = 2


class ConfigError(JaxninjaError):
    """A setting is out of range or unavailable (batch size < 2, unknown dtype, no torch, ...)."""

    exit_code = 2


class ArgumentError(ConfigError, TypeError):
    """A Python caller passed a value of the wrong type (``jaxninja.train(steps="10")``): one
    line naming the keyword, and still the ``TypeError`` Python code expects."""


class CheckpointError(JaxninjaError):
    """A checkpoint cannot be read, verified, or written."""

    exit_code = 1


class TrainingError(JaxninjaError):
    """Training cannot go on (a non-finite loss, manual and jax.grad gradients disagree)."""

    exit_code = 1


class DistributedError(JaxninjaError):
    """A run over several processes cannot start or go on (a port in use, a process that did not
    connect or that left, processes started with different settings)."""

    exit_code = 1


class TapError(JaxninjaError):
    """A forward's taps cannot be differentiated as written (nested, repeated, misnamed)."""

    exit_code = 2


class ModelError(JaxninjaError):
    """A model (file) cannot be checked: it does not load, or breaks the model protocol."""

    exit_code = 2


class BackwardError(JaxninjaError):
    """A backward cannot be generated: a primitive without a rule, or a rule whose proof is not
    in the shipped table (``jaxninja backward``)."""

    exit_code = 2


class NonFiniteLoss(TrainingError):
    """The loss became inf or nan; ``step`` is the first step that produced it."""

    def __init__(self, step: int, value: float, last_saved: int | None):
        self.step, self.value, self.last_saved = step, value, last_saved
        super().__init__(f"loss is {value} at step {step:,}; training stopped there")


class RunNonFinite(NonFiniteLoss):
    """A run's loss became inf or nan; ``run`` is its index."""

    def __init__(self, run: int, step: int, value: float, last_saved: int | None):
        super().__init__(step, value, last_saved)
        self.run = run
        self.args = (f"run {run}: {self.args[0]}",)


class NotRegularFile(Exception):
    """``path`` is not a regular file; ``kind`` says what it is ("a directory", "a FIFO", ...).
    Not a :class:`JaxninjaError`: each reader catches it and raises its own, naming its flag."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class FdError(JaxninjaError):
    """Finite differences cannot check this forward (it does not compute in float64)."""

    exit_code = 2
