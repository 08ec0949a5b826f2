"""jaxninja: makemore Part 4 (Becoming a Backprop Ninja) in JAX."""

from jaxninja.errors import CheckpointError, ConfigError, DataError, JaxninjaError, TrainingError
from jaxninja.model import Intermediates, Params, forward_chunked, init_params, loss_fused

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Intermediates",
    "JaxninjaError",
    "Params",
    "TrainingError",
    "forward_chunked",
    "init_params",
    "loss_fused",
]
__version__ = "0.1.0"
