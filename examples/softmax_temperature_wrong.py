"""Softmax with temperature T over the V classes, with a classic wrong gradient.

Wrong: the 1/T factor forgotten. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/softmax_temperature_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("softmax_temperature.py"))  # the same forward
layer = right.with_claims(
    {
        # 1/T forgotten
        "logits": "probs * (dprobs - sum(dprobs * probs, axis=1, keepdims=True))",
    },
    title=right.title + "; wrong claim",
)
