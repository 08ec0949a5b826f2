"""The Huber loss with delta = 1, with a classic wrong gradient.

Wrong: the quadratic branch's r / n used everywhere, as if the loss were r**2 / 2. It is
refuted with a counterexample.

Run: jaxninja derive --layer examples/huber_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("huber.py"))  # the same forward
layer = right.with_claims(
    {"x": "r / n", "t": "-clip(r, -delta, delta) / n"},
    title=right.title + "; wrong claim",
)
