"""A two-layer tanh MLP with a classic wrong gradient.

Wrong: the tanh derivative forgotten on the way back through the hidden layer (dW1 and db1
use dh where they need dh * (1 - h**2)). It is refuted with a counterexample.

Run: jaxninja derive --layer examples/mlp_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("mlp.py"))  # the same forward
layer = right.with_claims(
    {**right.claim_text, "W1": "x.T @ (dout @ W2.T)", "b1": "sum(dout @ W2.T, axis=0)"},
    title=right.title + "; wrong claim",
)
