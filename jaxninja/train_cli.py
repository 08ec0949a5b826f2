"""``jaxninja train | sample | evaluate``: thin argparse glue over :mod:`jaxninja.train`.

jaxninja train --out runs/lecture                  # the lecture's Exercise 4 (200,000 steps)
jaxninja train --steps 2000 --n-hidden 64 --out runs/quick --checkpoint-every 500
jaxninja train --resume runs/quick --steps 4000    # continue, bit for bit, to step 4,000
jaxninja sample --checkpoint runs/lecture --num 20 --seed 7
jaxninja evaluate --checkpoint runs/lecture
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from jaxninja import parallel, settings
from jaxninja.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    checkpoint_file,
    load_checkpoint,
    prepare_out_dir,
    save_checkpoint,
    write_atomic,
)
from jaxninja.data import (
    DEFAULT_SOURCE,
    Dataset,
    load_dataset,
)
from jaxninja.errors import CheckpointError, ConfigError, DataError, TrainingError
from jaxninja.model import BNStats, Params, n_params
from jaxninja.plot_loss import plot_loss
from jaxninja.train import (
    ChunkReport,
    NonFiniteLoss,
    TrainConfig,
    TrainResult,
    TrainState,
    calibrate,
    sample,
    split_losses,
    train,
)

LOSSES_NAME = "losses.npy"  # every step's loss, saved next to the checkpoint for loss.png
LOG_EVERY = 10_000  # without a terminal (logs, CI) print one line per this many steps
SAMPLE_SEED_OFFSET = 10  # the lecture samples with seed 2147483647 + 10
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells do

# flags that define the run; on --resume they come from the checkpoint and may not change
RUN_FLAGS = {
    "n_embd": "--n-embd",
    "n_hidden": "--n-hidden",
    "block_size": "--block-size",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "lr_decay_step": "--lr-decay-step",
    "lr_decay": "--lr-decay",
    "seed": "--seed",
    "dtype": "--dtype",
}


# ----------------------------------------------------------------------------------- flags


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``jaxninja train``; run settings default to None so --resume can tell them apart."""
    d = TrainConfig()
    p.add_argument(
        "--data",
        help="word list, one word a line (default: $JAXNINJA_NAMES, else "
        "../shared/data/names.txt, else US census first names from the names package)",
    )
    p.add_argument(
        "--steps",
        type=int,
        help=f"total SGD steps (default {d.steps:,}; on --resume "
        "the checkpoint's, or more to train longer)",
    )
    p.add_argument("--batch-size", type=int, help=f"examples per step (default {d.batch_size})")
    p.add_argument("--n-embd", type=int, help=f"embedding size per character (default {d.n_embd})")
    p.add_argument("--n-hidden", type=int, help=f"hidden units (default {d.n_hidden})")
    p.add_argument("--block-size", type=int, help=f"characters of context (default {d.block_size})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {d.lr})")
    p.add_argument(
        "--lr-decay-step",
        type=int,
        help=f"step from which the learning rate is "
        f"multiplied by --lr-decay (default {d.lr_decay_step:,})",
    )
    p.add_argument(
        "--lr-decay",
        type=float,
        help=f"learning-rate factor from --lr-decay-step on (default {d.lr_decay})",
    )
    p.add_argument(
        "--seed", type=int, help=f"seed of parameters, batches and samples (default {d.seed})"
    )
    p.add_argument("--dtype", help="parameter dtype: float32 (default) or float64")
    p.add_argument(
        "--device",
        help="cpu or gpu (default: JAX's default device); an error says so when JAX sees no GPU",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        metavar="N",
        help="split each batch over N devices of --device's platform (data parallel, "
        "synchronised BatchNorm; --batch-size a multiple of N; on CPU simulate devices with "
        "XLA_FLAGS=--xla_force_host_platform_device_count=N) (default 1)",
    )
    p.add_argument(
        "--out",
        help="directory for checkpoint.npz, summary.json, loss.png "
        "(default: out, or the --resume directory)",
    )
    p.add_argument(
        "--samples", type=int, default=20, help="names to sample at the end (default 20)"
    )
    p.add_argument(
        "--check-every",
        type=int,
        default=0,
        metavar="N",
        help="every N steps "
        "compare the manual gradients with jax.grad and stop if they disagree "
        "(default 0: never)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="save a checkpoint every N steps (default 0: only at the end or on Ctrl-C/SIGTERM)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run saved in DIR (its "
        "checkpoint.npz); the result is bit-identical to a run that never stopped",
    )


def _add_checkpoint_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="checkpoint file, or a directory holding checkpoint.npz",
    )


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``jaxninja sample``."""
    _add_checkpoint_flag(p)
    p.add_argument("--num", type=int, default=20, help="names to sample (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``jaxninja evaluate``."""
    _add_checkpoint_flag(p)
    p.add_argument("--data", help="word list to evaluate on (default: the one it was trained on)")


# ----------------------------------------------------------------------------------- helpers


def data_source(dataset: Dataset) -> str:
    """What to record as the run's data: an absolute path, or ``names-package``."""
    if dataset.source == DEFAULT_SOURCE:
        return DEFAULT_SOURCE
    return str(Path(dataset.source).resolve())


def resumed_config(args: argparse.Namespace, ckpt: Checkpoint, path: Path) -> TrainConfig:
    """The checkpoint's settings; a run flag given with another value is an error."""
    saved = TrainConfig.from_dict(ckpt.config)
    for attr, flag in RUN_FLAGS.items():
        given = getattr(args, attr)
        if given is not None and given != getattr(saved, attr):
            raise ConfigError(
                f"{flag} {given} does not match the checkpoint {path} "
                f"({getattr(saved, attr)}); drop the flag to resume"
            )
    steps = saved.steps if args.steps is None else args.steps
    if steps < ckpt.step:
        raise ConfigError(
            f"--steps {steps:,} is below the checkpoint's step {ckpt.step:,} ({path})"
        )
    return saved._replace(steps=steps)


def fresh_config(args: argparse.Namespace) -> TrainConfig:
    """The defaults, overridden by every run flag given."""
    given = {attr: getattr(args, attr) for attr in (*RUN_FLAGS, "steps")}
    return TrainConfig()._replace(**{k: v for k, v in given.items() if v is not None})


def to_numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, tree)


def save_run(
    out: Path, state: TrainState, stats: BNStats, dataset: Dataset, config: TrainConfig
) -> None:
    """The checkpoint (parameters, calibrated statistics, vocab, config, step, RNG key) and the
    loss history beside it."""
    run_config = config.to_dict() | {"data": data_source(dataset)}
    ckpt = Checkpoint(
        to_numpy(state.params),
        to_numpy(stats),
        dataset.vocab,
        run_config,
        state.step,
        np.asarray(jax.random.key_data(state.batch_key)),
    )
    write_atomic(out / LOSSES_NAME, lambda f: np.save(f, state.losses))
    save_checkpoint(out / CHECKPOINT_NAME, ckpt)


def load_losses(folder: Path, step: int) -> np.ndarray:
    """The first ``step`` losses saved in ``folder``, or NaN (a gap in loss.png) if missing."""
    try:
        losses = np.load(folder / LOSSES_NAME, allow_pickle=False)
    except (OSError, ValueError):
        losses = np.zeros(0, np.float32)
    if losses.ndim != 1 or len(losses) < step:
        return np.full(step, np.nan, np.float32)
    return losses[:step]


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Turn the first SIGINT/SIGTERM into a request (a list that gets the signal number) that the
    loop honours at the next step boundary; a second signal acts at once as usual."""
    caught: list[int] = []

    def request_stop(signum: int, frame: Any) -> None:
        caught.append(signum)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    previous = {sig: signal.signal(sig, request_stop) for sig in EXIT_STATUS}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Progress:
    """A tqdm bar (step, loss, steps/s) on a terminal; without one, a log line per 10,000 steps.

    The rate shown is the last chunk's, measured by the loop; tqdm's own average would include
    the compile of the first chunk.
    """

    FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} steps [{elapsed}<{remaining}{postfix}]"

    def __init__(self, start: int, total: int):
        self.bar = tqdm(
            total=total,
            initial=start,
            disable=None,
            dynamic_ncols=True,
            bar_format=self.FORMAT,
            postfix="compiling",
        )
        self.last_log = start

    def __call__(self, report: ChunkReport) -> None:
        rate = report.n_steps / max(report.seconds, 1e-9)
        shown = "compiling" if report.compiled else f"{rate:,.0f} steps/s"
        self.bar.set_postfix_str(f"loss {report.loss:.4f}, {shown}", refresh=False)
        self.bar.update(report.n_steps)
        if self.bar.disable and report.step // LOG_EVERY > self.last_log // LOG_EVERY:
            print(f"step {report.step:,}: loss {report.loss:.4f}, {rate:,.0f} steps/s", flush=True)
            self.last_log = report.step

    def close(self) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------------- train


class Run(NamedTuple):
    """A run ready to start: its settings, data, output folder and (on --resume) its state."""

    config: TrainConfig
    dataset: Dataset
    out: Path
    device: jax.Device
    mesh: Mesh | None  # --devices N > 1: the batch is split over these devices
    state: TrainState | None  # None: start from the seed
    resume: Path | None  # the checkpoint file resumed from


def setup_run(args: argparse.Namespace) -> Run:
    """Validate the flags, read the checkpoint on --resume, load the data, prepare --out."""
    settings.validate_args(args)
    resume = checkpoint_file(args.resume) if args.resume else None
    ckpt = load_checkpoint(resume) if resume else None
    config = resumed_config(args, ckpt, resume) if ckpt else fresh_config(args)
    settings.resolve_dtype(config.dtype)
    device = settings.resolve_device(args.device or "auto")
    mesh = None
    if args.devices != 1:
        settings.check_int("--devices", args.devices, 1)
        mesh = parallel.make_mesh(args.devices, device.platform)
        parallel.check_divisible(config.batch_size, args.devices)
    data = args.data if args.data or ckpt is None else ckpt.config.get("data")
    dataset = load_dataset(data, config.block_size)
    if ckpt is not None and ckpt.vocab != dataset.vocab:
        raise CheckpointError(
            f"{resume}: checkpoint vocabulary {ckpt.vocab.chars!r} does not "
            f"match the data's {dataset.vocab.chars!r} ({dataset.source})"
        )
    out = prepare_out_dir(args.out or (resume.parent if resume else "out"))
    state = None
    if ckpt is not None:
        state = TrainState(
            Params(*(jnp.asarray(p) for p in ckpt.params)),
            ckpt.step,
            jax.random.wrap_key_data(jnp.asarray(ckpt.rng_key)),
            load_losses(resume.parent, ckpt.step),
        )
    return Run(config, dataset, out, device, mesh, state, resume)


def run_train(args: argparse.Namespace) -> int:
    """``jaxninja train``: train, calibrate, evaluate, sample, and write the run to --out."""
    config, dataset, out, device, mesh, state, resume = setup_run(args)

    def save(s: TrainState) -> None:
        save_run(out, s, calibrate(s.params, dataset.train.x), dataset, config)

    n_train = len(dataset.train.y)
    start = state.step if state else 0
    with stop_on_signals() as caught:
        print(
            f"training on {dataset.source} ({n_train:,} examples, vocabulary "
            f"{dataset.vocab.size}) for steps {start:,}..{config.steps:,} on {device.platform} "
            f"({device}{f' x {mesh.size}' if mesh else ''}), {config.dtype}",
            flush=True,
        )
        progress = Progress(start, config.steps)
        try:
            result = train(
                config,
                dataset,
                state=state,
                check_every=args.check_every,
                checkpoint_every=args.checkpoint_every,
                save=save,
                should_stop=lambda: bool(caught),
                on_chunk=progress,
                device=None if args.device in (None, "auto") else device,  # None: uncommitted
                mesh=mesh,
            )
            progress.close()
            if not result.interrupted:  # a signal from here on lets the run finish
                finish(out, result, dataset, config, device, args.samples)
                return 0
        except NonFiniteLoss as err:
            kept = kept_checkpoint(err.last_saved, start, out, resume)
            raise TrainingError(f"{err} (lr {lr_at(config, err.step):g}); {kept}") from None
        except KeyboardInterrupt:
            sys.stderr.write(
                "jaxninja: interrupted twice; stopped without saving (the last "
                "checkpoint, if any, is kept)\n"
            )
            return EXIT_STATUS[signal.SIGINT]
        finally:
            progress.close()
    signum = caught[0]
    sys.stderr.write(
        f"jaxninja: {signal.Signals(signum).name} at step "
        f"{result.state.step:,}: checkpoint saved to {out / CHECKPOINT_NAME}; "
        f"continue with: jaxninja train --resume {out}\n"
    )
    return EXIT_STATUS[signum]


def lr_at(config: TrainConfig, step: int) -> float:
    """The learning rate of ``step`` (for messages; the loop uses step.learning_rate)."""
    return config.lr if step < config.lr_decay_step else config.lr * config.lr_decay


def kept_checkpoint(last_saved: int | None, start: int, out: Path, resume: Path | None) -> str:
    """The end of the non-finite message: which good checkpoint is left, if any."""
    if last_saved is None:
        return "no checkpoint was saved (--checkpoint-every N keeps one every N steps)"
    path = resume if resume is not None and last_saved == start else out / CHECKPOINT_NAME
    return f"the last good checkpoint (step {last_saved:,}) is kept in {path}"


def finish(
    out: Path,
    result: TrainResult,
    dataset: Dataset,
    config: TrainConfig,
    device: jax.Device,
    num_samples: int,
) -> None:
    """Calibrate BatchNorm, evaluate, sample; write checkpoint, summary.json and loss.png."""
    state = result.state
    stats = calibrate(state.params, dataset.train.x)
    losses = split_losses(state.params, stats, dataset)
    key = jax.random.fold_in(jax.random.key(config.seed), SAMPLE_SEED_OFFSET)
    names = sample(state.params, stats, dataset.vocab, num_samples, key) if num_samples else []
    save_run(out, state, stats, dataset, config)
    summary = {
        "config": config.to_dict() | {"data": data_source(dataset)},
        "n_params": n_params(state.params),
        "losses": losses,
        "steps_per_s": result.steps_per_s,
        "compile_and_first_chunk_s": result.compile_s,
        "wall_s": result.wall_s,
        "device": {
            "platform": device.platform,
            "kind": device.device_kind,
            "name": str(device),
            "host": platform.processor() or platform.machine(),
        },
        "jax": jax.__version__,
        "samples": names,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    write_atomic(
        out / "summary.json",
        lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode("utf-8")),
    )
    plot_loss(
        state.losses,
        out / "loss.png",
        title=f"{n_params(state.params):,} parameters, {config.steps:,} steps",
    )
    rate = "steps/s n/a: every chunk compiled"
    if result.steps_per_s is not None:
        rate = f"{result.steps_per_s:,.0f} steps/s"
    print(
        f"train {losses['train']:.4f}  val {losses['val']:.4f}  test {losses['test']:.4f}  "
        f"({rate}; {result.wall_s:.1f} s incl. {result.compile_s:.1f} s compiling)"
    )
    for name in names:
        print(name)
    print(f"wrote {out / CHECKPOINT_NAME}, {out / 'summary.json'}, {out / 'loss.png'}")


# ----------------------------------------------------------------------------------- sample


def load_for_use(path: str) -> Checkpoint:
    """A checkpoint with calibrated statistics, its arrays on the default device."""
    ckpt = load_checkpoint(path)
    if ckpt.bn_stats is None:
        raise CheckpointError(f"{checkpoint_file(path)}: no calibrated BatchNorm statistics")
    if ckpt.params.W1.dtype == np.float64:
        settings.enable_x64()
    to_jax = lambda tree: jax.tree.map(jnp.asarray, tree)  # noqa: E731
    return ckpt._replace(
        params=Params(*to_jax(tuple(ckpt.params))), bn_stats=BNStats(*to_jax(tuple(ckpt.bn_stats)))
    )


def run_sample(args: argparse.Namespace) -> int:
    """``jaxninja sample``: print names drawn from a checkpoint."""
    settings.check_int("--num", args.num, 1)
    settings.check_seed(args.seed)
    ckpt = load_for_use(args.checkpoint)
    for name in sample(ckpt.params, ckpt.bn_stats, ckpt.vocab, args.num, jax.random.key(args.seed)):
        print(name)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``jaxninja evaluate``: the split losses of a checkpoint on its data (or --data)."""
    ckpt = load_for_use(args.checkpoint)
    block_size = ckpt.params.W1.shape[0] // ckpt.params.C.shape[1]
    dataset = load_dataset(args.data or ckpt.config.get("data"), block_size)
    if dataset.vocab != ckpt.vocab:
        raise DataError(
            f"{dataset.source}: vocabulary {dataset.vocab.chars!r} does not match "
            f"the checkpoint's {ckpt.vocab.chars!r}"
        )
    losses = split_losses(ckpt.params, ckpt.bn_stats, dataset)
    print(
        f"{dataset.source} at step {ckpt.step:,}: "
        + "  ".join(f"{name} {loss:.4f}" for name, loss in losses.items())
    )
    return 0
