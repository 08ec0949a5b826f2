"""The torch reference: the notebook's forward with autograd on every intermediate, and the
notebook's manual backward in torch. Needs the ``torch`` extra; jaxninja never imports it."""

from torch_ref.reference import (
    ROWS,
    TANH_LINES,
    autograd_grads,
    forward,
    init_params,
    manual_backward,
    to_torch,
)

__all__ = [
    "ROWS",
    "TANH_LINES",
    "autograd_grads",
    "forward",
    "init_params",
    "manual_backward",
    "to_torch",
]
