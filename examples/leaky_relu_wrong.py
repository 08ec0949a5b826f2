"""Leaky ReLU with slope 1/100 below 0, on (n, D), with a classic wrong gradient.

Wrong: the two branches swapped. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/leaky_relu_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("leaky_relu.py"))  # the same forward
layer = right.with_claims(
    {"x": "where(x > 0, 0.01 * dout, dout)"},
    title=right.title + "; wrong claim",
)
