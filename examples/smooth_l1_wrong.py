"""torch's smooth L1 loss with beta = 1/2, with a classic wrong gradient.

Wrong: the 1/beta forgotten inside the clip. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/smooth_l1_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("smooth_l1.py"))  # the same forward
layer = right.with_claims(
    {"x": "clip(r, -1, 1) / n", "t": "-clip(r / beta, -1, 1) / n"},
    title=right.title + "; wrong claim",
)
