"""``jaxninja check``: flags -> :class:`CheckConfig` -> :func:`jaxninja.check.cross_check` ->
the table (or JSON, or plots); exit 1 when a row breaks the contract."""

from __future__ import annotations

import argparse
import json

from jaxninja.config import CheckConfig
from jaxninja.settings import check_against, torch_available

from .flags import add_config_flags, add_distributed_flags, given, join_processes

DATA_NOTE = " (default: $JAXNINJA_NAMES, else the names package's census names)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``jaxninja check``: the model's sizes with Exercise 1's defaults."""
    p.add_argument("--data", help="word list, one word a line" + DATA_NOTE)
    add_config_flags(p, CheckConfig, ("max_data_bytes",))
    sizes = ("n_embd", "n_hidden", "block_size", "batch_size", "seed", "dtype")
    add_config_flags(p, CheckConfig, sizes)
    p.add_argument(
        "--against",
        help="comma-separated references: jax, torch (default: jax,torch, or jax alone when "
        "torch is not installed)",
    )
    notes = {
        "torch_tanh": ": the notebook's (1 - h**2) * dh or the fixed addcmul form",
        "devices": ", compared with 1 device and jax.grad "
        "(on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N)",
    }
    add_config_flags(p, CheckConfig, ("jit", "torch_tanh", "devices"), notes=notes)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="DIR", help="save dlogits.png and errors.png into DIR")
    add_distributed_flags(p)


def parse_against(text: str | None) -> tuple[str, ...]:
    """``jax,torch`` -> ("jax", "torch"), each name checked (torch must be installed when named);
    None -> both references, or jax alone when torch is not installed."""
    if text is None:
        return ("jax", "torch") if torch_available() else ("jax",)
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",")))
    return tuple(check_against(name) for name in names)


def run(args: argparse.Namespace) -> int:
    """Check, print, plot."""
    names = (
        "data",
        "max_data_bytes",
        "n_embd",
        "n_hidden",
        "block_size",
        "batch_size",
        "seed",
        "dtype",
    )
    names += ("jit", "torch_tanh", "devices")
    cfg = CheckConfig(**given(args, names), against=parse_against(args.against))
    writer = True
    if join_processes(args):  # several processes: the sharded rows span all their devices
        import jax

        from jaxninja.distributed import check_joined

        check_joined()
        writer = jax.process_index() == 0  # every process checks; process 0 prints
        if cfg.devices == 1:
            cfg = cfg._replace(devices=jax.device_count())
    if args.plot:  # refuse an unusable folder before the work, not after
        from jaxninja.checkpoint import prepare_out_dir

        prepare_out_dir(args.plot, "--plot")
    from jaxninja.check import cross_check, format_table

    result = cross_check(cfg)
    if writer:
        print(json.dumps(result.as_json()) if args.json else format_table(result))
    if args.plot and writer:
        from jaxninja.plot_check import save_plots

        save_plots(result, args.plot)
    return 0 if result.ok else 1
