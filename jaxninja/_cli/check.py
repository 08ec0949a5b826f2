"""``jaxninja check``: flags -> :class:`CheckConfig` ->
:func:`jaxninja.gradcheck.lecture_check.cross_check` ->
the table (or JSON, or plots); exit 1 when a row breaks the contract."""

from __future__ import annotations

import argparse
import json

from jaxninja.checks import check_against, default_references
from jaxninja.config import FLAGS, CheckConfig

from .flags import add_config_flags, add_distributed_flags, given, join_processes

DATA_NOTE = " (default: $JAXNINJA_NAMES, else the names package's census names)"
LECTURE_ONLY = ("data", "n_embd", "n_hidden", "block_size", "batch_size", "torch_tanh", "devices")
LECTURE_ONLY += ("max_data_bytes",)
"""Flags that only describe the lecture's model: refused with ``--model``."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``jaxninja check``: the model's sizes with Exercise 1's defaults."""
    p.add_argument(
        "--model",
        metavar="FILE",
        help="check your own model instead of the lecture's: a Python file defining init, "
        "batch, forward, backward (and optionally torch_forward, scale_rows); FILE runs as "
        "Python. Refuses the flags that size the lecture's model",
    )
    p.add_argument("--data", help="word list, one word a line" + DATA_NOTE)
    add_config_flags(p, CheckConfig, LECTURE_ONLY[1:5], none_defaults=True)
    add_config_flags(p, CheckConfig, ("seed", "dtype"), none_defaults=True)
    add_config_flags(p, CheckConfig, ("max_data_bytes",), none_defaults=True)
    p.add_argument(
        "--against",
        help="comma-separated references: jax, torch, fd (float64 central differences; "
        "default: jax,torch, or jax alone when torch is not installed)",
    )
    notes = {
        "torch_tanh": ": the notebook's (1 - h**2) * dh or the fixed addcmul form",
        "devices": ", compared with 1 device and jax.grad "
        "(on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N)",
    }
    p.add_argument(
        "--jit",
        nargs="?",
        const="jit",
        choices=("eager", "jit", "both"),
        help="jit-compile the forward and both backwards; both: eager and jit side by side, a "
        "column each (bare --jit: jit; default eager)",
    )
    add_config_flags(p, CheckConfig, ("torch_tanh", "devices"), none_defaults=True, notes=notes)
    p.add_argument(
        "--fd-full",
        action="store_true",
        help="with --against fd: every element of every row (the full Jacobian, 4 float64 "
        "forwards per element), not random directions for rows over 1,024 elements; refused "
        "past 100,000 forwards (~2 min here)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="save dlogits.png and errors.png into DIR (with --model: errors.png)",
    )
    add_distributed_flags(p)


def _print(result, as_json: bool, table) -> None:
    """The result as one JSON object (valid JSON always: a non-finite number is null) or as
    ``table(result)``."""
    if as_json:
        from jaxninja.gradcheck.compare import json_safe

        print(json.dumps(json_safe(result.as_json()), allow_nan=False))
    else:
        print(table(result))


def parse_against(text: str | None) -> tuple[str, ...]:
    """``jax,torch`` -> ("jax", "torch"), each name checked (torch must be installed when named);
    None -> both references, or jax alone when torch is not installed."""
    if text is None:
        return default_references()
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",")))
    return tuple(check_against(name) for name in names)


def _fd_full_needs_fd(args: argparse.Namespace, against: tuple[str, ...]) -> None:
    """``--fd-full`` without fd among the references would do nothing: refused in one line."""
    if args.fd_full and "fd" not in against:
        from jaxninja.errors import ConfigError

        raise ConfigError("--fd-full: only with --against ...,fd (finite differences)")


def run(args: argparse.Namespace) -> int:
    """Check, print, plot."""
    if args.model is not None:
        return run_model(args)
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
    names += ("torch_tanh", "devices")
    jit = args.jit or "eager"
    cfg = CheckConfig(**given(args, names), jit=jit == "jit", against=parse_against(args.against))
    writer = True
    if join_processes(args):  # several processes: the sharded rows span all their devices
        import jax

        from jaxninja.devices.distributed import check_joined

        check_joined()
        writer = jax.process_index() == 0  # every process checks; process 0 prints
        if cfg.devices == 1:
            cfg = cfg.replace(devices=jax.device_count())
    if args.plot:  # refuse an unusable folder before the work, not after
        from jaxninja.io.atomic import prepare_out_dir

        prepare_out_dir(args.plot, "--plot")
    from jaxninja.gradcheck.lecture_check import cross_check, format_table

    _fd_full_needs_fd(args, cfg.against)
    result = cross_check(cfg, jit=jit, fd_full=args.fd_full)
    if writer:
        _print(result, args.json, format_table)
    if args.plot and writer:
        from jaxninja.gradcheck.plots import save_plots

        save_plots(result, args.plot)
    return 0 if result.ok else 1


def run_model(args: argparse.Namespace) -> int:
    """``check --model FILE``: the table of your own model (exit 1 if a row breaks its bound,
    2 if the file cannot be checked)."""
    from jaxninja.errors import ConfigError

    given_flags = [FLAGS[n].flag for n in LECTURE_ONLY if getattr(args, n, None) is not None]
    if given_flags:
        raise ConfigError(
            f"{', '.join(given_flags)}: only for the lecture's model, not with --model "
            "(your FILE's init and batch size the model)"
        )
    cfg = CheckConfig(**given(args, ("seed", "dtype")))  # validated like the lecture's
    against = None if args.against is None else parse_against(args.against)
    _fd_full_needs_fd(args, against or ())
    if args.plot:
        from jaxninja.io.atomic import prepare_out_dir

        prepare_out_dir(args.plot, "--plot")
    from jaxninja.gradcheck.model_check import cross_check_model, format_model_table

    result = cross_check_model(
        args.model,
        seed=cfg.seed,
        dtype=cfg.dtype,
        jit=args.jit or "eager",
        against=against,
        fd_full=args.fd_full,
    )
    _print(result, args.json, format_model_table)
    if args.plot:
        from jaxninja.gradcheck.plots import save_plots

        save_plots(result, args.plot)
    return 0 if result.ok else 1
