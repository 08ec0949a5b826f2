"""Run the one engine over the lecture's layers: derive, prove, check exactly, time each part.

Each layer of :mod:`derivations.lecture` goes through what a layer file goes through
(:mod:`derivations.engine.derive`): its shifts are checked, every claim is derived and proved (or
refuted with a counterexample), the Exercise 1 chains are proved as further claims, and each
proved claim is checked once more exactly at concrete sizes (the written-out forward's exact
derivative, no delta collapse). :func:`run_all` returns it all; :mod:`derivations.outputs.files`
renders the files ``python -m derivations`` writes from it.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from derivations import lecture
from derivations.engine import derive
from derivations.engine.derive import Verdict
from derivations.language.layer import Layer

EXACT_SIZES = 1  # sizes each proved claim is checked at exactly (15 s CPU budget for --check)


class Checked(NamedTuple):
    """One lecture layer through the engine."""

    layer: Layer
    verdicts: tuple[Verdict, ...]  # each claim the kernel prints
    chains: tuple[Verdict, ...]  # Exercise 1's chain, composed, as a claim
    concrete: dict[str, list[dict]]  # input -> the sizes where the exact check agreed
    problems: tuple[str, ...]  # a shift that is not one, an exact check that disagrees
    seconds: dict[str, float]  # each part's time: derive and prove, the exact check


class Results(NamedTuple):
    """Every lecture layer's results, and how long each part took."""

    layers: tuple[Checked, ...]
    seconds: dict[str, float]

    def failures(self) -> list[str]:
        """One line per thing that did not check out (empty when all is proved)."""
        bad = []
        for checked in self.layers:
            name = checked.layer.name
            bad += [f"{name}.d{v.key}: {v.proof}" for v in checked.verdicts if not v.proof.ok]
            bad += [
                f"{name}.d{v.key} (Exercise 1 chain): {v.proof}"
                for v in checked.chains
                if not v.proof.ok
            ]
            bad += [f"{name}: {problem}" for problem in checked.problems]
            bad += [
                f"{name}.d{key}: no size checked exactly"
                for key, sizes in checked.concrete.items()
                if not sizes
            ]
        return bad

    def derived(self) -> dict[str, dict]:
        """Layer name -> input -> its derived gradient (what a ``derived`` kernel prints)."""
        return {c.layer.name: {v.key: v.derived for v in c.verdicts} for c in self.layers}


def check_layer(layer: Layer) -> Checked:
    """One lecture layer: shifts, claims, the Exercise 1 chain, the exact check."""
    start = time.perf_counter()
    decided = derive.with_max_reductions(layer)  # proves each shift once for all the checks
    problems = [
        f"{name}: max(...) is supported in the lecture only as a shift the output does not "
        f"depend on, and d objective / d {name} is not proved 0"
        for name in decided.reductions
    ]
    layer = decided
    verdicts = tuple(derive.check(layer, key) for key in layer.claim_text)
    chains = tuple(
        derive.check(layer.with_claims({key: text}), key)
        for key, text in lecture.CHAINS.get(layer.name, {}).items()
    )
    proved = time.perf_counter()
    concrete = {}
    for key in layer.claims:
        concrete[key], problem = derive.exact_agreement(layer, key, limit=EXACT_SIZES)
        if problem is not None:
            problems.append(f"exact check: {problem}")
    seconds = {"derive and prove": proved - start, "exact check": time.perf_counter() - proved}
    return Checked(layer, verdicts, chains, concrete, tuple(problems), seconds)


def run_all() -> Results:
    """Every lecture layer through the engine, each part timed over all layers."""
    layers = tuple(check_layer(layer) for layer in lecture.LAYERS)
    seconds: dict[str, float] = {}
    for checked in layers:
        for part, value in checked.seconds.items():
            seconds[part] = seconds.get(part, 0.0) + value
    return Results(layers, seconds)
