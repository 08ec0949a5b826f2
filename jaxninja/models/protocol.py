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

Training (``jaxninja train --model FILE``) reads the same file and, optionally, more:

    def init(key, vocab_size=None): ...     # training passes the data's vocabulary size
    train_defaults = {"block_size": 8}      # TrainConfig fields used when no flag is given
    def stats_init(params): ...             # statistics carried through training (running
    def stats_update(stats, acts): ...      # BatchNorm mean/var), updated every step from taps
    def calibrate(params, x_train): ...     # or: statistics computed once after training
    def logits(params, stats, x): ...       # (N, vocab) next-character logits at evaluation

``FILE:NAME`` reads those attributes from ``getattr(module, NAME)`` instead of the module (a
variant of the file's model, e.g. ``wavenet.py:part5``).

The file runs as Python (it is a program, not data): load only files you would run. Everything
wrong with it (a syntax error, a missing function, a forward that is not scalar, a backward that
returns something else than arrays, an exception inside it) is a one-line :class:`ModelError`
(exit 2 from the CLI). The lecture's MLP, as a model: :func:`jaxninja.models.lecture.lecture_model`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxninja.errors import JaxninjaError, ModelError

REQUIRED = ("init", "batch", "forward", "backward")
HOOKS = ("stats_init", "stats_update", "calibrate", "logits")  # optional, for training


class Model(NamedTuple):
    """A model to check: see the module docstring for each function's contract."""

    name: str  # shown in the table: the file, or "lecture"
    init: Callable[[jax.Array], Any]
    batch: Callable[[jax.Array], Any]
    forward: Callable[[Any, Any, Callable], Any]
    backward: Callable[[Any, Any, dict[str, jax.Array]], Mapping[str, Any]]
    torch_forward: Callable[[Any, Any, Callable], Any] | None = None
    scale_rows: Mapping[str, str] = {}
    train_defaults: Mapping[str, Any] = {}  # TrainConfig fields: the file's own defaults
    hooks: Mapping[str, Callable] = {}  # the optional training functions present (HOOKS)
    source_sha256: str | None = None  # of the file's bytes: a checkpoint records it


def recorded(forward: Callable, params: Any, batch: Any) -> tuple[Any, dict[str, Any]]:
    """``(loss, acts)``: ``forward(params, batch, tap)`` with the plainest tap, one that records
    every tapped intermediate by name and returns it unchanged (as a trainer runs a model, also
    under ``jit``): ``acts`` is what ``backward(params, batch, acts)`` reads."""
    acts: dict[str, Any] = {}

    def tap(name: str, value: Any) -> Any:
        acts[name] = value
        return value

    return forward(params, batch, tap), acts


def frame_line(err: BaseException, path: str) -> str:
    """`` (line N)`` of the innermost frame of ``err`` inside the file ``path``, if any."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == path]
    return f" (line {frames[-1].lineno})" if frames else ""


def one_line(text: str) -> str:
    """The first non-blank line of ``text``: an exception's message as one line of output."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


MAX_MODEL_BYTES = 4 * 2**20  # a model file is source code: 4 MiB is 100x the WaveNet's file


def split_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE:NAME`` (a variant): the file and the attribute holding the model. A
    path that exists as given is a file even if it holds a colon."""
    text = str(spec)
    head, sep, name = text.rpartition(":")
    if sep and head and name.isidentifier() and not Path(text).exists():
        return Path(head), name
    return Path(text), None


def read_source(path: Path, shown: str) -> bytes:
    """The file's bytes: a regular file of at most :data:`MAX_MODEL_BYTES` (a FIFO or
    ``/dev/zero`` is refused, never read until memory is gone)."""
    from jaxninja.io.files import open_regular

    try:
        with open_regular(path) as f:
            source = f.read(MAX_MODEL_BYTES + 1)
    except OSError as err:
        raise ModelError(f"--model {shown}: {err.strerror or err}") from None
    except JaxninjaError as err:
        raise ModelError(f"--model {shown}: {one_line(err)}") from None
    if len(source) > MAX_MODEL_BYTES:
        raise ModelError(f"--model {shown}: over {MAX_MODEL_BYTES:,} bytes; not a model file")
    return source


def load_model(spec: str | Path) -> Model:
    """Run the Python file ``spec`` (``FILE`` or ``FILE:NAME``) as a module and collect its
    model functions (from ``getattr(module, NAME)`` for a variant).

    The file is untrusted input in the sense that anything may be wrong with it: every failure
    is one :class:`ModelError` line naming the file (and the line, where there is one). It is
    *not* sandboxed: the file runs as Python, with your permissions.
    """
    path, variant = split_spec(spec)
    shown = str(spec)
    source = read_source(path, shown)
    module = _run_module(path, source, str(path))
    where = module
    if variant is not None:
        if not hasattr(module, variant):
            raise ModelError(f"{path}: defines no {variant!r} (asked for by --model {shown})")
        where = getattr(module, variant)
    return _collect(where, shown, hashlib.sha256(source).hexdigest())


def _run_module(path: Path, source: bytes, shown: str) -> Any:
    """Compile and run the model file as a module of its own."""
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
    return module


def _collect(where: Any, shown: str, sha256: str) -> Model:
    """The protocol's functions and settings found on ``where`` (a module or a variant)."""
    missing = [f for f in REQUIRED if not callable(getattr(where, f, None))]
    if missing:
        need = ", ".join(f"{f}()" for f in missing)
        raise ModelError(f"{shown}: defines no {need} (a model file needs init, batch, "
                         "forward, backward)")  # fmt: skip
    torch_forward = getattr(where, "torch_forward", None)
    if torch_forward is not None and not callable(torch_forward):
        raise ModelError(f"{shown}: torch_forward is not a function")
    scale_rows = getattr(where, "scale_rows", {})
    if not isinstance(scale_rows, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in scale_rows.items()
    ):
        raise ModelError(f"{shown}: scale_rows must map row names to row names, e.g. "
                         '{"b1": "hprebn"}')  # fmt: skip
    defaults = getattr(where, "train_defaults", {})
    if not isinstance(defaults, Mapping) or not all(isinstance(k, str) for k in defaults):
        raise ModelError(f"{shown}: train_defaults must map setting names to values, e.g. "
                         '{"block_size": 8}')  # fmt: skip
    hooks = {}
    for name in HOOKS:
        fn = getattr(where, name, None)
        if fn is not None and not callable(fn):
            raise ModelError(f"{shown}: {name} is not a function")
        if fn is not None:
            hooks[name] = fn
    if ("stats_init" in hooks) != ("stats_update" in hooks):
        raise ModelError(f"{shown}: stats_init and stats_update come together (one is missing)")
    return Model(
        shown,
        where.init,
        where.batch,
        where.forward,
        where.backward,
        torch_forward,
        dict(scale_rows),
        dict(defaults),
        hooks,
        sha256,
    )
