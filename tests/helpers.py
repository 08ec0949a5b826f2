"""What several test files share (tests only): the repository root, the small training settings,
the one refusal check, a setting's two spellings, the hang guard, the command in a fresh process,
the lecture's random batches, checkpoint builders, torch's gradients, and one WRONG-ON-PURPOSE
data-parallel step. Test files import from here, never from each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from functools import cache, partial
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxninja.config import TrainConfig
from jaxninja.data import STDIN_NAME, Vocab
from jaxninja.devices.parallel import BATCH_AXIS, replicate, shard_batch
from jaxninja.io import checkpoint as ck
from jaxninja.io.checkpoint import Checkpoint
from jaxninja.lecture import step
from jaxninja.lecture.backward import ROWS
from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import BNStats, Params, init_params

ROOT = Path(__file__).resolve().parent.parent

# One small model for the training tests: each new chunk length or schedule costs a compile, so
# they share these settings (1,000-step runs = one chunk) and the jit caches that go with them.
SMALL = TrainConfig(n_embd=4, n_hidden=16, steps=1000, lr_decay_step=500, seed=1)
SMALL_FLAGS = ["--n-embd", "4", "--n-hidden", "16", "--lr-decay-step", "500", "--seed", "1"]


def refused(error: type[Exception], load, path, match: str, *, at_start: bool = False, **kwargs):
    """``load(path, **kwargs)`` raises a one-line ``error`` matching ``match`` that names
    ``path`` (``-``: standard input), at its start with ``at_start``; returns the message."""
    with pytest.raises(error, match=match) as info:
        load(path, **kwargs)
    message = str(info.value)
    shown = STDIN_NAME if str(path) == "-" else str(path)
    assert "\n" not in message
    assert message.startswith(shown) if at_start else shown in message
    return message


# ------------------------------------------------------------------------ a hang is a failure

HANG_LIMIT_S = 10  # a read or open that would hang is cut off here; a refusal takes milliseconds


def names_setting(err: Exception, pattern: str, keyword: str, flag: str) -> None:
    """``err`` (a jaxninja error) reads ``pattern`` (a regex; ``{}`` where the setting goes) with
    the setting spelled ``keyword=`` as Python shows it (``str``) and ``flag`` as the command line
    prints it (``render(cli=True)``): one error, both spellings right."""
    python, cli = str(err), err.render(cli=True)
    spelled = f"{keyword}=" if keyword.isidentifier() else keyword  # "lr * lr_decay" as it is
    assert re.search(pattern.replace("{}", re.escape(spelled)), python), python
    assert re.search(pattern.replace("{}", re.escape(flag)), cli), cli
    assert flag not in python, python  # the keyword only, never the flag, from Python


def finishes(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread (its result, or the exception it raised); fails the
    test if it has not returned within HANG_LIMIT_S (a FIFO with no writer must not hang)."""
    result: list[object] = []

    def target() -> None:
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as err:  # handed back to the test
            result.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_LIMIT_S)
    assert not thread.is_alive(), f"{fn.__name__} hung for {HANG_LIMIT_S} s"
    return result[0]


# ------------------------------------------------------------------------ the command line


def run_command(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command's exit status and its output, as text."""
    return subprocess.run(
        [sys.executable, "-m", "jaxninja", *args],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------ the lecture's batches

NOTEBOOK = dict(n_embd=10, n_hidden=64, block_size=3, batch=32)
ODD = dict(n_embd=6, n_hidden=37, block_size=5, batch=7)


def batch(seed, shape, dtype, vocab_size=27, n_train=1000):
    """Parameters and a random batch of contexts/targets for ``shape``."""
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = init_params(
        kp, vocab_size, shape["n_embd"], shape["n_hidden"], shape["block_size"], dtype
    )
    xb = jax.random.randint(kx, (shape["batch"], shape["block_size"]), 0, vocab_size)
    yb = jax.random.randint(ky, (shape["batch"],), 0, vocab_size)
    return params, xb, yb


# Eager jax compiles every primitive once per (shape, dtype): that, not the seeds, is the cost.
# The default run covers both shapes and both dtypes in two combinations; -m slow runs all four.
COMBOS = [
    pytest.param(NOTEBOOK, "float32", id="notebook-float32"),
    pytest.param(ODD, "float64", id="odd-float64"),
    pytest.param(NOTEBOOK, "float64", id="notebook-float64", marks=pytest.mark.slow),
    pytest.param(ODD, "float32", id="odd-float32", marks=pytest.mark.slow),
]


# ------------------------------------------------------------------------ checkpoints

VOCAB = Vocab("abcdefghijklmnopqrstuvwxyz")
SIZES = {"n_embd": 4, "n_hidden": 8, "block_size": 3}


def make_checkpoint(dtype: str = "float32", with_bn: bool = True, seed: int = 0) -> Checkpoint:
    """Random (not trained) parameters of the right shapes; numpy only, so float64 needs no x64."""
    rng = np.random.default_rng(seed)
    shapes = ck.expected_shapes(VOCAB.size, **SIZES)
    arrays = {key: rng.standard_normal(shape).astype(dtype) for key, shape in shapes.items()}
    params = Params(*(arrays[key] for key in ck.PARAM_KEYS))
    bn_stats = BNStats(*(arrays[key] for key in ck.BN_KEYS)) if with_bn else None
    config = SIZES | {
        "dtype": dtype,
        "seed": seed,
        "schedule": {"lr": 0.1, "decay_step": 100, "decay": 0.1},
    }
    key = np.array([0, 42], dtype=np.uint32)  # what jax.random.key_data(jax.random.key(42)) is
    return Checkpoint(params, bn_stats, VOCAB, config, 1234, key)


def assert_same(a: Checkpoint, b: Checkpoint) -> None:
    """Bit-exact equality: same dtype, same shape, same bytes (so NaN payloads would count too)."""
    for x, y in zip(a.params, b.params, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    assert (a.bn_stats is None) == (b.bn_stats is None)
    if a.bn_stats is not None:
        for x, y in zip(a.bn_stats, b.bn_stats, strict=True):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    assert a.vocab == b.vocab and a.config == b.config and a.step == b.step
    assert a.rng_key.dtype == np.uint32 and np.array_equal(a.rng_key, b.rng_key)


def write_raw(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an archive exactly as given (possibly invalid), bypassing save_checkpoint's checks."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def resealed(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` with a fresh, valid checksum, to test the checks that come after it."""
    payload = {k: v for k, v in arrays.items() if k != ck.CHECKSUM_KEY}
    return payload | {ck.CHECKSUM_KEY: ck._checksum(payload)}


# ------------------------------------------------------------------------ torch's gradients


def torch_grads(params, xb, yb, tanh="fixed"):
    import torch_ref  # torch only for the tests that ask

    tp = torch_ref.to_torch({k: np.asarray(v) for k, v in params._asdict().items()})
    fwd = torch_ref.forward(tp, np.asarray(xb), np.asarray(yb))
    autograd = {k: v.numpy() for k, v in torch_ref.autograd_grads(tp, fwd).items()}
    manual = {k: v.numpy() for k, v in torch_ref.manual_backward(tp, fwd, tanh).items()}
    return autograd, manual


def exact_rows(manual, autograd):
    return [name for name in ROWS if np.array_equal(manual[name], autograd[name])]


# ------------------------------------------------------------------------ WRONG ON PURPOSE
# Unsynchronised BatchNorm, as naive data parallelism does it: each device runs the one-device
# backward on its shard alone, so BatchNorm normalises with the shard's mean and variance, and
# the gradients are averaged afterwards: a different model from the global-batch one.
# tests/devices/test_parallel.py shows that the package's comparisons catch it.


def loss_and_grads_per_shard_bn(
    mesh: Mesh, params: Params, xb: jax.Array, yb: jax.Array
) -> tuple[jax.Array, Params]:
    """WRONG ON PURPOSE (tests only): unsynchronised BatchNorm, as naive data parallelism does it.

    Each device runs the one-device backward on its shard alone, so BatchNorm normalises with the
    shard's mean and variance (n/N examples, Bessel's n/N - 1), and the loss and gradients are
    averaged over devices afterwards. That is a different model from the global-batch one.
    """
    return _per_shard_bn(mesh)(replicate(mesh, params), *shard_batch(mesh, xb, yb))


@cache  # one jitted program per mesh (an eager shard_map would run op by op)
def _per_shard_bn(mesh: Mesh):
    def local(params: Params, xb: jax.Array, yb: jax.Array) -> tuple[jax.Array, Params]:
        loss, grads = loss_and_grads(params, xb, yb)
        return jax.lax.pmean((loss, grads), BATCH_AXIS)

    specs = {"in_specs": (P(), P(BATCH_AXIS), P(BATCH_AXIS)), "out_specs": (P(), P())}
    return jax.jit(jax.shard_map(local, mesh=mesh, **specs))


@partial(jax.jit, static_argnames=("mesh", "n_steps", "batch_size", "schedule"))
def train_chunk_per_shard_bn(
    params: Params,
    key: jax.Array,
    step0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    mesh: Mesh,
    n_steps: int,
    batch_size: int,
    schedule: step.Schedule,
) -> tuple[Params, jax.Array]:
    """WRONG ON PURPOSE (tests only): :func:`jaxninja.lecture.step.train_chunk`'s batches and
    schedule, stepped with :func:`loss_and_grads_per_shard_bn`'s unsynchronised BatchNorm."""
    steps = step0 + jax.numpy.arange(n_steps)
    ix = step.chunk_indices(key, steps, batch_size, x.shape[0])
    lrs = step.learning_rate(schedule, steps).astype(params.W1.dtype)
    grads_of = _per_shard_bn(mesh)

    def sgd(p: Params, batch: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[Params, jax.Array]:
        xb, yb, lr = batch
        loss, grads = grads_of(p, xb, yb)
        return jax.tree.map(lambda a, g: a - lr * g, p, grads), loss

    return jax.lax.scan(sgd, params, (x[ix], y[ix], lrs))
