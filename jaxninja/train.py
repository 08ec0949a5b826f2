"""Exercise 4: train the lecture's MLP with the manual backward, then calibrate, evaluate, sample.

The hot loop is :func:`jaxninja.step.train_chunk` (many SGD steps per dispatch in a
``lax.scan``); this module drives it chunk by chunk, which gives natural step boundaries for the
progress bar, the non-finite check, ``check_every``, checkpoints and Ctrl-C. From Python::

    import jax

    from jaxninja.data import load_dataset
    from jaxninja.train import TrainConfig, calibrate, sample, split_losses, train

    config = TrainConfig(steps=20_000)              # the lecture's Exercise 4, shorter
    dataset = load_dataset(block_size=config.block_size)
    result = train(config, dataset)
    stats = calibrate(result.state.params, dataset.train.x)
    print(split_losses(result.state.params, stats, dataset))
    print(sample(result.state.params, stats, dataset.vocab, 20, jax.random.key(0)))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxninja import fused, parallel
from jaxninja.data import Dataset, Vocab
from jaxninja.errors import ConfigError, TrainingError
from jaxninja.model import (
    BNStats,
    Params,
    batch_stats,
    hprebn_of,
    init_params,
    logits_fused,
    loss_fused,
)
from jaxninja.step import Schedule, batch_indices, train_chunk

CHUNK_STEPS = 1_000  # steps per dispatch: one compiled scan; the loop checks in between
CHECK_TOLERANCE = 32  # check_every allows 32 eps x the largest gradient (see gradient_errors)


class TrainConfig(NamedTuple):
    """A training run's settings; the defaults are the lecture's Exercise 4."""

    n_embd: int = 10  # dimensions of a character's embedding
    n_hidden: int = 200  # neurons in the BatchNorm'd tanh layer
    block_size: int = 3  # characters of context used to predict the next one
    batch_size: int = 32  # examples per SGD step (BatchNorm's Bessel variance needs >= 2)
    steps: int = 200_000  # SGD steps in total
    lr: float = 0.1  # learning rate ...
    lr_decay_step: int = 100_000  # ... multiplied by lr_decay from this step on
    lr_decay: float = 0.1
    seed: int = 2147483647  # the lecture's torch.Generator seed; here a jax.random.key
    dtype: str = "float32"  # parameter dtype: float32 or float64 (needs jax_enable_x64)

    @property
    def schedule(self) -> Schedule:
        return Schedule(float(self.lr), int(self.lr_decay_step), float(self.lr_decay))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in checkpoints and summary.json (schedule nested)."""
        d = self._asdict()
        lr, decay_step, decay = (d.pop(k) for k in ("lr", "lr_decay_step", "lr_decay"))
        return d | {"schedule": {"lr": lr, "decay_step": decay_step, "decay": decay}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; keys that are not settings (e.g. ``data``) are ignored."""
        flat = {k: v for k, v in d.items() if k in cls._fields}
        sched = d.get("schedule", {})
        flat |= {
            "lr": sched.get("lr", cls._field_defaults["lr"]),
            "lr_decay_step": sched.get("decay_step", cls._field_defaults["lr_decay_step"]),
            "lr_decay": sched.get("decay", cls._field_defaults["lr_decay"]),
        }
        return cls(**flat)


class TrainState(NamedTuple):
    """Where a run stands: parameters after ``step`` steps, the batch key, every loss so far."""

    params: Params
    step: int
    batch_key: jax.Array  # fixed for the run; step s's batch comes from fold_in(batch_key, s)
    losses: np.ndarray  # (step,) the loss of each step done, for the plot


class ChunkReport(NamedTuple):
    """What the loop reports after each chunk (the CLI feeds it to the progress bar)."""

    step: int  # steps done after this chunk
    n_steps: int  # steps in this chunk
    loss: float  # the chunk's mean loss
    seconds: float  # wall time of the chunk
    compiled: bool  # first chunk of this length in this run: its time may include compiling


class TrainResult(NamedTuple):
    """The end of :func:`train`: the final state and how fast it went."""

    state: TrainState
    interrupted: bool  # True if ``should_stop`` asked to stop before ``config.steps``
    steps_per_s: float | None  # over the chunks not marked ``compiled`` (None if there were none)
    compile_s: float  # wall time of the chunks marked ``compiled``
    wall_s: float  # wall time of the whole loop


class NonFiniteLoss(TrainingError):
    """The loss became inf or nan; ``step`` is the first step that produced it."""

    def __init__(self, step: int, value: float, last_saved: int | None):
        self.step, self.value, self.last_saved = step, value, last_saved
        super().__init__(f"loss is {value} at step {step:,}; training stopped there")


def start_state(config: TrainConfig, vocab_size: int) -> TrainState:
    """Step 0 of a run: parameters and batch key both come from ``jax.random.key(seed)``."""
    init_key, batch_key = jax.random.split(jax.random.key(config.seed))
    params = init_params(
        init_key,
        vocab_size,
        config.n_embd,
        config.n_hidden,
        config.block_size,
        dtype=float_dtype(config.dtype),
    )
    return TrainState(params, 0, batch_key, np.zeros(0, np.float32))


def float_dtype(name: str) -> jnp.dtype:
    """``float32`` or ``float64``; float64 only when ``jax_enable_x64`` is on (or jax would
    silently compute in float32)."""
    if name not in ("float32", "float64"):
        raise ConfigError(f"dtype {name!r} is not supported; use float32 or float64")
    if name == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError(
            "dtype float64 needs jax_enable_x64 (jax.config.update("
            "'jax_enable_x64', True) or `with jax.enable_x64(True):`)"
        )
    return jnp.dtype(name)


def next_boundary(step: int, end: int, *everies: int) -> int:
    """The next step after ``step`` that ends a chunk: a multiple of the chunk length, of each
    non-zero ``every`` (checks, checkpoints), or the end of the run."""
    return min([end] + [(step // n + 1) * n for n in everies if n > 0])


ManualGrads = Callable[[Params, jax.Array, jax.Array], tuple[jax.Array, Params]]


@partial(jax.jit, static_argnames="manual")
def gradient_errors(
    params: Params, xb: jax.Array, yb: jax.Array, manual: ManualGrads
) -> tuple[jax.Array, jax.Array]:
    """Max |manual - jax.grad| for each parameter group, and the largest |jax.grad| of all.

    The scale is global, not per group: ``db1`` is zero by symmetry (BatchNorm cancels ``b1``), so
    its own size is rounding noise and cannot serve as a scale.
    """
    _, grads = manual(params, xb, yb)
    reference = jax.grad(loss_fused)(params, xb, yb)
    errors = jnp.stack([jnp.abs(g - r).max() for g, r in zip(grads, reference, strict=True)])
    scale = jnp.stack([jnp.abs(r).max() for r in reference]).max()
    return errors, scale


def check_gradients(
    params: Params,
    batch_key: jax.Array,
    step: int,
    x: jax.Array,
    y: jax.Array,
    batch_size: int,
    manual: ManualGrads | None = None,
) -> None:
    """Compare the manual backward (default: fused.loss_and_grads) with ``jax.grad`` on step
    ``step``'s own batch.

    Raises :class:`TrainingError` naming the step and the parameter group if they differ by more
    than 32 eps x the largest gradient: float rounding in these sums of a few hundred terms stays
    well inside that, while a wrong formula is off by a fraction of the gradient itself.
    """
    ix = batch_indices(batch_key, np.int32(step), batch_size, x.shape[0])
    manual = manual or fused.loss_and_grads
    errors, scale = jax.device_get(gradient_errors(params, x[ix], y[ix], manual))
    tol = CHECK_TOLERANCE * float(jnp.finfo(params.W1.dtype).eps) * float(scale)
    for name, err in zip(Params._fields, errors, strict=True):
        if not err <= tol:
            raise TrainingError(
                f"step {step}: manual d{name} differs from jax.grad by {err:.3g} "
                f"(tolerance {tol:.3g} = {CHECK_TOLERANCE} eps x max|grad|)"
            )


def train(
    config: TrainConfig,
    dataset: Dataset,
    *,
    state: TrainState | None = None,
    chunk_steps: int = CHUNK_STEPS,
    check_every: int = 0,
    checkpoint_every: int = 0,
    save: Callable[[TrainState], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    device: jax.Device | None = None,
    mesh: Mesh | None = None,
) -> TrainResult:
    """Run SGD with the manual backward from ``state`` (default: a fresh start) to ``config.steps``.

    Chunks end at multiples of ``chunk_steps``, ``check_every`` and ``checkpoint_every``, so the
    batches and updates do not depend on where a run was interrupted. ``save(state)`` is called at
    each multiple of ``checkpoint_every`` and when ``should_stop()`` turns true (checked after
    every chunk; then the result has ``interrupted=True``). A non-finite loss raises
    :class:`NonFiniteLoss` naming its step; nothing is saved after it. With ``mesh``
    (``parallel.make_mesh(N)``) every step's batch is split over its N devices, BatchNorm
    synchronised (see parallel.py); ``device`` is then not used.
    """
    float_dtype(config.dtype)
    state = state or start_state(config, dataset.vocab.size)
    place, batch_sharding = device, None
    if mesh is not None:
        parallel.check_divisible(config.batch_size, mesh.size)
        place, batch_sharding = parallel.replicated(mesh), parallel.chunk_sharding(mesh)
    x, y = jax.device_put((dataset.train.x, dataset.train.y), place)
    params = jax.device_put(state.params, place)
    step, losses = state.step, [state.losses]
    last_saved = state.step if state.step > 0 else None
    seen_lengths: set[int] = set()
    warm_steps, warm_s, compile_s = 0, 0.0, 0.0
    t_start = time.perf_counter()

    def current() -> TrainState:
        return TrainState(params, step, state.batch_key, np.concatenate(losses))

    while step < config.steps:
        if check_every and step % check_every == 0:
            check_gradients(params, state.batch_key, step, x, y, config.batch_size)
        n = next_boundary(step, config.steps, chunk_steps, check_every, checkpoint_every) - step
        t0 = time.perf_counter()
        new_params, chunk_losses = train_chunk(
            params,
            state.batch_key,
            np.int32(step),
            x,
            y,
            n,
            config.batch_size,
            config.schedule,
            batch_sharding=batch_sharding,
        )
        chunk_losses = np.asarray(chunk_losses)
        seconds = time.perf_counter() - t0
        bad = ~np.isfinite(chunk_losses)
        if bad.any():
            i = int(bad.argmax())
            raise NonFiniteLoss(step + i, float(chunk_losses[i]), last_saved)
        params, step = new_params, step + n
        losses.append(chunk_losses)
        compiled = n not in seen_lengths
        seen_lengths.add(n)
        if compiled:
            compile_s += seconds
        else:
            warm_steps, warm_s = warm_steps + n, warm_s + seconds
        if on_chunk:
            on_chunk(ChunkReport(step, n, float(chunk_losses.mean()), seconds, compiled))
        if step == config.steps:
            break  # the caller saves the finished run (with calibrated statistics)
        stop = should_stop is not None and should_stop()
        if save and (stop or (checkpoint_every and step % checkpoint_every == 0)):
            save(current())
            last_saved = step
        if stop:
            break
    wall_s = time.perf_counter() - t_start
    steps_per_s = warm_steps / warm_s if warm_s > 0 else None  # None: every chunk compiled
    return TrainResult(current(), step < config.steps, steps_per_s, compile_s, wall_s)


# ------------------------------------------------------------------- after training: the lecture


@jax.jit
def calibrate(params: Params, x_train: jax.Array) -> BNStats:
    """BatchNorm's statistics over the whole training split: mean and Bessel variance of hprebn."""
    return batch_stats(hprebn_of(params, x_train))


@jax.jit
def _split_loss(params: Params, stats: BNStats, x: jax.Array, y: jax.Array) -> jax.Array:
    return loss_fused(params, x, y, stats)


def split_losses(params: Params, stats: BNStats, dataset: Dataset) -> dict[str, float]:
    """The loss on each split with the calibrated BatchNorm statistics (lecture: train 2.0705,
    val 2.1099)."""
    return {
        name: float(_split_loss(params, stats, split.x, split.y))
        for name, split in zip(("train", "val", "test"), dataset[:3], strict=True)
    }


@jax.jit
def _sample_step(
    params: Params, stats: BNStats, context: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Draw the next character of every name from softmax(logits); shift it into the context."""
    ix = jax.random.categorical(key, logits_fused(params, context, stats), axis=1)
    ix = ix.astype(context.dtype)
    return jnp.concatenate([context[:, 1:], ix[:, None]], axis=1), ix


def sample(
    params: Params, stats: BNStats, vocab: Vocab, num: int, key: jax.Array, max_len: int = 100
) -> list[str]:
    """``num`` names, as in the lecture: the context starts as ``...`` and characters are drawn
    from the softmax until ``.`` (or ``max_len`` characters, a guard for untrained models)."""
    block_size = params.W1.shape[0] // params.C.shape[1]
    context = jnp.zeros((num, block_size), jnp.int32)
    tokens = np.zeros((num, max_len), np.int32)
    for t in range(max_len):
        context, ix = _sample_step(params, stats, context, jax.random.fold_in(key, t))
        tokens[:, t] = np.asarray(ix)
        if (tokens[:, : t + 1] == 0).any(axis=1).all():
            break
    names = []
    for row in tokens:
        end = int(np.argmax(row == 0)) if (row == 0).any() else max_len
        names.append(vocab.decode(row[:end].tolist()))
    return names
