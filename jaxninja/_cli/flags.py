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
