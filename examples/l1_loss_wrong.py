"""The L1 loss, mean |x - t| over the batch, with a classic wrong gradient.

Wrong: the mean's 1/n forgotten in dx, the sign of dt flipped. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/l1_loss_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("l1_loss.py"))  # the same forward
layer = right.with_claims(
    {"x": "sign(x - t)", "t": "sign(x - t) / n"},
    title=right.title + "; wrong claim",
)
