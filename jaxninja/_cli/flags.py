"""argparse flags built from the config classes: each default and help text lives in one place."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from jaxninja.config import FLAGS, ModelConfig


def add_config_flags(
    parser: argparse.ArgumentParser,
    config: type[ModelConfig],
    names: tuple[str, ...] | None = None,
    *,
    none_defaults: bool = False,
    notes: dict[str, str] | None = None,
) -> None:
    """One flag per field of ``config`` (or of ``names``) from :data:`jaxninja.config.FLAGS`.

    ``none_defaults``: the flags default to None so a caller can tell "not given" (train's
    ``--resume``) from the default, which the help text still shows. ``notes`` add a field's
    command-specific words to its help.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name in names or tuple(defaults):
        flag = FLAGS[name]
        default = defaults[name]
        note = (notes or {}).get(name, "")
        help_text = f"{flag.help}{note} (default {_shown(default)})"
        if flag.type is bool:
            parser.add_argument(flag.flag, action="store_true", help=help_text)
            continue
        parser.add_argument(
            flag.flag,
            type=flag.type,
            default=None if none_defaults else default,
            dest=name,
            help=help_text,
        )


def _shown(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields among ``names`` that were given on the command line (not None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def add_distributed_flags(p: argparse.ArgumentParser) -> None:
    """``--coordinator``, ``--num-processes``, ``--process-id``: this process's place in a run
    over several processes (``jaxninja launch`` passes them; SLURM / Open MPI need none)."""
    g = p.add_argument_group(
        "several processes",
        "one run over several processes (hosts); every process gets the same other flags and "
        "data. On one machine `jaxninja launch` starts them; under SLURM or Open MPI the count "
        "and id come from the environment",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="process 0's address and a free port (default: $JAX_COORDINATOR_ADDRESS or the "
        "cluster's)",
    )
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    g.add_argument("--process-id", type=int, metavar="I", help="this process's id, 0..N-1")


def join_processes(args: argparse.Namespace) -> bool:
    """Join the run over several processes that the flags or the environment describe, before
    anything starts jax's backend; False: this is a run in one process."""
    from jaxninja.devices import distributed

    spec = distributed.spec_from(args.coordinator, args.num_processes, args.process_id)
    if spec is None:
        return False
    distributed.initialize(spec)
    return True
