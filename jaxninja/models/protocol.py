"""The model protocol: what a model file defines, and its loader. A module of its own, apart
from the check table (:mod:`jaxninja.gradcheck.model_check`), so that training can load the same
files without importing the checks.

A model is five functions (:class:`Model`), usually defined in a Python file
(``jaxninja check --model FILE``, :func:`load_model`)::

    def init(key): ...                      # parameters: any pytree of arrays
    def batch(key): ...                     # the batch: any pytree of arrays (ints: indices)
    def forward(params, batch, tap): ...    # scalar loss; x = tap("x", x) marks intermediates
    def backward(params, batch, acts): ...  # {"x": dx, "W": dW, ...}: your manual gradients
    def torch_forward(params, batch, tap): ...  # optional: the same forward in torch
    scale_rows = {"b1": "hprebn"}           # optional: zero-by-symmetry rows, measured at
                                            # another row's scale

The file runs as Python (it is a program, not data): load only files you would run. Everything
wrong with it (a syntax error, a missing function, a forward that is not scalar, a backward that
returns something else than arrays, an exception inside it) is a one-line :class:`ModelError`
(exit 2 from the CLI). The lecture's MLP, as a model: :func:`jaxninja.models.lecture.lecture_model`.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxninja.errors import ModelError

REQUIRED = ("init", "batch", "forward", "backward")


class Model(NamedTuple):
    """A model to check: see the module docstring for each function's contract."""

    name: str  # shown in the table: the file, or "lecture"
    init: Callable[[jax.Array], Any]
    batch: Callable[[jax.Array], Any]
    forward: Callable[[Any, Any, Callable], Any]
    backward: Callable[[Any, Any, dict[str, jax.Array]], Mapping[str, Any]]
    torch_forward: Callable[[Any, Any, Callable], Any] | None = None
    scale_rows: Mapping[str, str] = {}


def frame_line(err: BaseException, path: str) -> str:
    """`` (line N)`` of the innermost frame of ``err`` inside the file ``path``, if any."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == path]
    return f" (line {frames[-1].lineno})" if frames else ""


def one_line(text: str) -> str:
    """The first non-blank line of ``text``: an exception's message as one line of output."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def load_model(path: str | Path) -> Model:
    """Run the Python file ``path`` as a module and collect its model functions.

    The file is untrusted input in the sense that anything may be wrong with it: every failure
    is one :class:`ModelError` line naming the file (and the line, where there is one). It is
    *not* sandboxed: the file runs as Python, with your permissions.
    """
    path = Path(path)
    shown = str(path)
    try:
        source = path.read_bytes()
    except OSError as err:
        raise ModelError(f"--model {shown}: {err.strerror or err}") from None
    try:
        code = compile(source, str(path.resolve()), "exec")
    except SyntaxError as err:
        raise ModelError(f"{shown}:{err.lineno}: syntax error: {err.msg}") from None
    except ValueError as err:  # e.g. null bytes
        raise ModelError(f"{shown}: not Python source: {err}") from None
    name = f"jaxninja_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path.resolve())
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        exec(code, module.__dict__)
    except SystemExit as err:  # running the file may not end the process
        raise ModelError(f"{shown}: running it called sys.exit({err.code!r})") from None
    except Exception as err:
        where = frame_line(err, str(path.resolve()))
        raise ModelError(
            f"{shown}: running it raised {type(err).__name__}{where}: {one_line(err)}"
        ) from None
    missing = [f for f in REQUIRED if not callable(getattr(module, f, None))]
    if missing:
        need = ", ".join(f"{f}()" for f in missing)
        raise ModelError(f"{shown}: defines no {need} (a model file needs init, batch, "
                         "forward, backward)")  # fmt: skip
    torch_forward = getattr(module, "torch_forward", None)
    if torch_forward is not None and not callable(torch_forward):
        raise ModelError(f"{shown}: torch_forward is not a function")
    scale_rows = getattr(module, "scale_rows", {})
    if not isinstance(scale_rows, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in scale_rows.items()
    ):
        raise ModelError(f"{shown}: scale_rows must map row names to row names, e.g. "
                         '{"b1": "hprebn"}')  # fmt: skip
    return Model(
        shown,
        module.init,
        module.batch,
        module.forward,
        module.backward,
        torch_forward,
        dict(scale_rows),
    )
