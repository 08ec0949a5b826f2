"""ReLU6: minimum(maximum(x, 0), 6), on (n, D), with a classic wrong gradient.

Wrong: ReLU's gradient: the cap at 6 forgotten. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/relu6_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("relu6.py"))  # the same forward
layer = right.with_claims(
    {"x": "dout * (x > 0)"},
    title=right.title + "; wrong claim",
)
