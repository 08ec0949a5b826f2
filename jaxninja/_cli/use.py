"""``jaxninja sample`` and ``jaxninja evaluate``: one call each of
:mod:`jaxninja.training.inference`."""

from __future__ import annotations

import argparse

from jaxninja.config import DEFAULT_OUT
from jaxninja.data import MAX_DATA_BYTES


def _add_checkpoint_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        default=DEFAULT_OUT,
        metavar="PATH",
        help=f"checkpoint file, or a directory holding checkpoint.npz (default: {DEFAULT_OUT}, "
        "where train writes)",
    )


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="FILE[:NAME]",
        help="the model file the checkpoint was trained with (train --model); its logits "
        "sample and evaluate. The file runs as Python with your permissions",
    )
    p.add_argument(
        "--allow-model-change",
        action="store_true",
        help="use a --model file whose source differs from the checkpoint's record (SHA-256)",
    )


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_flag(p)
    _add_model_flags(p)
    p.add_argument("--num", type=int, default=20, help="names to sample (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_flag(p)
    _add_model_flags(p)
    p.add_argument("--data", help="word list to evaluate on (default: the one it was trained on)")
    p.add_argument(
        "--max-data-bytes",
        type=int,
        default=MAX_DATA_BYTES,
        metavar="N",
        help=f"read at most N bytes of words (default {MAX_DATA_BYTES:,})",
    )


def run_sample(args: argparse.Namespace) -> int:
    """Print names drawn from a checkpoint, each batch as soon as it is drawn (``--num`` of
    millions holds one batch, not every name)."""
    from jaxninja.training.inference import sample_batches

    model = {"model": args.model, "allow_model_change": args.allow_model_change}
    for batch in sample_batches(args.checkpoint, args.num, args.seed, **model):
        print("\n".join(batch), flush=True)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the split losses of a checkpoint on its data (or --data)."""
    from jaxninja.training.inference import evaluate

    model = {"model": args.model, "allow_model_change": args.allow_model_change}
    result = evaluate(args.checkpoint, args.data, args.max_data_bytes, **model)
    losses = "  ".join(f"{name} {loss:.4f}" for name, loss in result.losses.items())
    print(f"{result.source} at step {result.step:,}: {losses}")
    return 0
