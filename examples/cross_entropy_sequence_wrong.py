"""Sequence cross-entropy over (B, T, V), with a classic wrong gradient.

Wrong: divided by the batch B only, as for a (B, V) loss; the mean is over B * T positions.
It is refuted with a counterexample.

Run: jaxninja derive --layer examples/cross_entropy_sequence_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("cross_entropy_sequence.py"))  # the same forward
layer = right.with_claims(
    {"logits": "(probs - one_hot(y)) / B"}, title=right.title + "; wrong claim"
)
