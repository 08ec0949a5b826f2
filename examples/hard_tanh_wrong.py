"""Hard tanh: clip(x, -1, 1) element-wise, on (n, D), with a classic wrong gradient.

Wrong: the upper bound forgotten: dout passed above 1. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/hard_tanh_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("hard_tanh.py"))  # the same forward
layer = right.with_claims(
    {"x": "dout * (x > -1)"},
    title=right.title + "; wrong claim",
)
