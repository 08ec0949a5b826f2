"""A counterexample re-evaluated by a route the checker does not take (tests only): the concrete
forward summed out by ``Sum.doit()`` and differentiated, and the claim at the same element, both
exact. The checker's own search expands the forward itself; these agree with it or a test fails."""

from __future__ import annotations

import sympy as sp

from derivations.engine.derive import objective, raw
from derivations.language.layer import Layer


def exact_truth(layer: Layer, example) -> sp.Expr:
    """d objective / d element at the counterexample, by Sum.doit() on the concrete forward."""
    concrete = {**example.sizes, **layer.constant_values}
    labels = {k: v for k, v in example.inputs.items() if str(k.base) in layer.labels}
    total = objective(layer).xreplace(concrete).doit().xreplace(labels)
    return sp.diff(total, example.element).xreplace(example.inputs)


def exact_claim(layer: Layer, key: str, example) -> sp.Expr:
    """The claim at the counterexample's element, by Sum.doit()."""
    free = layer.free(layer.inputs[key])
    at = dict(zip(free, example.element.indices, strict=True))
    concrete = {**example.sizes, **layer.constant_values, **at}
    claim = raw(layer.claims[key], layer).xreplace(concrete).doit()
    labels = {k: v for k, v in example.inputs.items() if str(k.base) in layer.labels}
    return claim.xreplace(labels).xreplace(example.inputs)
