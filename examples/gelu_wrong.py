"""GELU (tanh approximation) with a classic wrong gradient.

Wrong: the derivative of the cubic term dropped (d u / d x taken as sqrt(2/pi)). It is refuted
with a counterexample.

Run: jaxninja derive --layer examples/gelu_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("gelu.py"))  # the same forward
layer = right.with_claims(
    {"x": "dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * sqrt(2 / pi))"},
    title=right.title + "; wrong claim",
)
