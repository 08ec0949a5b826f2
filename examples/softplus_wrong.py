"""Softplus with a classic wrong gradient.

Wrong: sigmoid's own derivative, sigmoid(x) * (1 - sigmoid(x)), taken for softplus's (whose
derivative is sigmoid itself). It is refuted with a counterexample.

Run: jaxninja derive --layer examples/softplus_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("softplus.py"))  # the same forward
layer = right.with_claims(
    {"x": "dout * sigmoid(x) * (1 - sigmoid(x))"}, title=right.title + "; wrong claim"
)
