"""Which runs a multi-run job trains: ``--seeds K`` times the ``--sweep`` settings, and the
statistics over their results. Nothing here imports jax, so the CLI refuses bad values before
jax starts.

Only settings that keep every array's shape may be swept (:data:`SWEEPABLE`: ``lr``,
``lr_decay``, ``lr_decay_step``): the runs are one compiled program, so their parameters must
stack into one array per group. Runs are ordered sweep point by sweep point (the first
``--sweep`` varying slowest), seeds innermost; run ``i`` lives in ``run-NN`` with ``NN = i``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaxninja import checks
from jaxninja.config import FLAGS, TrainConfig
from jaxninja.errors import ConfigError

SWEEPABLE = ("lr", "lr_decay", "lr_decay_step")
"""Settings a sweep may vary: they change numbers, never a shape."""

PLAN_NAME = "runs.json"  # the plan of a multi-run folder: base settings, seeds, sweep, runs
RUN_PREFIX = "run-"
SPLITS = ("train", "val", "test")
MAX_RUNS = 65_536  # far above any useful K; a typo like --seeds 10000000 is refused in one line


def check_seeds(value: int, base_seed: int, flag: checks.Label = checks.SEEDS) -> int:
    """``value`` seeds starting at ``base_seed``: K >= 1 and the last seed still valid."""
    checks.check_int(flag, value, 1, "at least one run")
    if value > MAX_RUNS:
        raise ConfigError(flag, f" must be at most {MAX_RUNS:,}, got {value:,}")
    last = base_seed + value - 1
    if last >= checks.SEED_LIMIT:
        raise ConfigError(
            flag, f" {value:,} from ", checks.SEED, f" {base_seed:,} reaches seed {last:,}, "
            "beyond 2**32 - 1; use a smaller ", checks.SEED,
        )  # fmt: skip
    return value


def parse_sweep(text: str) -> tuple[str, tuple[Any, ...]]:
    """``lr=0.05,0.1,0.2`` -> ``("lr", (0.05, 0.1, 0.2))``; the name may use ``-`` or ``_``."""
    name, sep, values = text.partition("=")
    field = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise ConfigError(f"--sweep {text!r}: expected NAME=V1,V2,... (e.g. lr=0.05,0.1,0.2)")
    if field not in SWEEPABLE:
        allowed = ", ".join(FLAGS[f].flag.lstrip("-") for f in SWEEPABLE)
        raise ConfigError(
            f"--sweep {text!r}: {name.strip()!r} cannot be swept (choose from {allowed}: "
            "settings that keep the arrays' shapes)"
        )
    flag = FLAGS[field]
    parsed = []
    for item in values.split(","):
        try:
            parsed.append(flag.type(item.strip()))
        except ValueError:
            raise ConfigError(
                f"--sweep {text!r}: {item.strip()!r} is not a valid {flag.flag} "
                f"({flag.type.__name__})"
            ) from None
        flag.check(parsed[-1], f"--sweep {flag.flag.lstrip('-')}")
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--sweep {text!r}: a value is repeated")
    return field, tuple(parsed)


def check_sweeps(sweeps: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
    names = [name for name, _ in sweeps]
    for name in set(names):
        if names.count(name) > 1:
            raise ConfigError(f"--sweep {FLAGS[name].flag.lstrip('-')} is given twice")


def plan_runs(
    base: TrainConfig, seeds: int = 1, sweeps: Sequence[tuple[str, tuple[Any, ...]]] = ()
) -> list[TrainConfig]:
    """Every run's settings: the product of the sweep points and ``seeds`` seeds from
    ``base.seed``, each a validated :class:`TrainConfig` (e.g. lr x decay underflowing)."""
    check_seeds(seeds, base.seed)
    check_sweeps(sweeps)
    points = itertools.product(*(values for _, values in sweeps))
    runs = []
    for point in points:
        changes = dict(zip((name for name, _ in sweeps), point, strict=True))
        for s in range(seeds):
            runs.append(base.replace(seed=base.seed + s, **changes))
    if len(runs) > MAX_RUNS:
        raise ConfigError(
            checks.SEEDS, " x ", checks.SWEEPS, f" make {len(runs):,} runs, more than {MAX_RUNS:,}"
        )
    return runs


def run_name(i: int, count: int) -> str:
    """``run-00`` .. : two digits, more when there are more than 100 runs."""
    return f"{RUN_PREFIX}{i:0{max(2, len(str(count - 1)))}d}"


def holds_runs(folder: str | Path) -> bool:
    """Whether ``folder`` is a multi-run folder (its plan, or any run folder with a checkpoint)."""
    folder = Path(folder)
    if (folder / PLAN_NAME).exists():
        return True
    return folder.is_dir() and any(folder.glob(f"{RUN_PREFIX}*/checkpoint.npz"))


def varying(runs: Sequence[TrainConfig]) -> tuple[str, ...]:
    """The settings that differ between runs, in the order of :data:`SWEEPABLE`, seed first."""
    fields = ("seed",) + SWEEPABLE
    return tuple(f for f in fields if len({getattr(r, f) for r in runs}) > 1)


def statistics(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (``n - 1``: the spread of the population the runs are
    drawn from; None for one run), min and max of ``values``, and how many there were."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def split_statistics(per_run: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """:func:`statistics` of each split's loss over runs (``per_run``: each run's losses)."""
    return {split: statistics([losses[split] for losses in per_run]) for split in SPLITS}
