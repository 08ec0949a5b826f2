"""Run everything: derivations, identity checks, the Exercise 1 chains, the brute force.

:func:`run_all` returns the results with the seconds each part took;
:func:`derivations.files.outputs` renders the files ``python -m derivations`` writes.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from derivations import brute
from derivations.chain import prove_chains
from derivations.derive import Derivation, derive_layer
from derivations.identities import Checked, check_layer
from derivations.layers import all_layers
from derivations.proofs import Proof


class Results(NamedTuple):
    """Everything the derivations established, and how long each part took."""

    derivations: tuple[Derivation, ...]
    identities: dict[str, tuple[Checked, ...]]  # layer name -> its checked identities
    chains: dict[str, Proof]  # Exercise 1 composed == closed form
    brute: tuple[brute.BruteForce, ...]
    seconds: dict[str, float]

    def failures(self) -> list[str]:
        """One line per thing that did not check out (empty when all is proved)."""
        bad = [
            f"{d.layer.name}.{st.gradient.name}: {st.proof}"
            for d in self.derivations
            for st in d.steps
            if not st.proof.ok
        ]
        bad += [
            f"{name}: identity {c.lhs} = {c.rhs} fails"
            for name, checked in self.identities.items()
            for c in checked
            if not c.holds
        ]
        bad += [
            f"Exercise 1 chain for {name}: {proof}"
            for name, proof in self.chains.items()
            if not proof.ok
        ]
        bad += [
            f"brute force {b.layer}.{b.gradient} at n={b.n}: {b.max_error}"
            for b in self.brute
            if not b.ok
        ]
        return bad


def run_all(sizes: tuple[int, ...] = brute.SIZES) -> Results:
    """Derive, check and brute-force every layer; ``sizes`` are the brute-force batch sizes."""
    seconds: dict[str, float] = {}
    layers = all_layers()

    def timed(name, work):
        start = time.perf_counter()
        result = work()
        seconds[name] = time.perf_counter() - start
        return result

    derivations = timed("derive", lambda: tuple(derive_layer(layer) for layer in layers))
    identities = timed("identities", lambda: {layer.name: check_layer(layer) for layer in layers})
    chains = timed("chains", prove_chains)
    checks = timed(
        "brute force",
        lambda: tuple(result for layer in layers for result in brute.check_layer(layer, sizes)),
    )
    return Results(derivations, identities, chains, checks, seconds)
