"""The exceptions jaxninja raises: one base class, so the CLI can turn any of them into one line.

Library code raises a specific subclass with a message that names the file, line, character or
value at fault. The CLI prints ``jaxninja: error: <message>`` and exits with ``exit_code``.
"""


class JaxninjaError(Exception):
    """Base of every error jaxninja raises on purpose."""

    exit_code = 1


class DataError(JaxninjaError):
    """The word list cannot be used (missing, unreadable, not UTF-8, bad characters, too small)."""

    exit_code = 2


class ConfigError(JaxninjaError):
    """A setting is out of range or unavailable (batch size < 2, unknown dtype, no torch, ...)."""

    exit_code = 2


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
