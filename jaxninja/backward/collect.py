"""The rule instances the shipped models use: what the proof table must hold.

The lecture's MLP and every model file in ``examples/models/`` are traced and generated with a
lookup that accepts every rule; each use is collected (``python -m jaxninja.backward.prove
--write`` proves them into the table).
"""

from __future__ import annotations

from pathlib import Path

from jaxninja.backward import generate_source
from jaxninja.backward.emit import Use

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


def lecture():
    """The lecture's MLP as a model (Exercise 1's sizes)."""
    from jaxninja.config import CheckConfig
    from jaxninja.data import load_dataset
    from jaxninja.models.lecture import lecture_model

    cfg = CheckConfig()
    return lecture_model(cfg, load_dataset(None, cfg.block_size))


def model_files() -> list[Path]:
    """The example model files (a generated backward's own file excluded)."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.endswith("_backward.py"))


def collect_uses() -> list[tuple[str, dict]]:
    """Every rule use of the lecture, the example models and the catalogue of common instances
    (:mod:`jaxninja.backward.catalogue`), as ``(prim, statement)``."""
    from jaxninja.backward.catalogue import models

    uses: list[Use] = []
    for model in [lecture(), *model_files(), *models()]:
        uses += generate_source(model, lookup=lambda statement: None).uses
    return [(u.prim, u.statement) for u in uses]
