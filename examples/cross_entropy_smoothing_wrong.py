"""Mean cross-entropy with label smoothing alpha, with a classic wrong gradient.

Wrong: the smoothing ignored. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/cross_entropy_smoothing_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("cross_entropy_smoothing.py"))  # the same forward
layer = right.with_claims(
    {
        "logits": "(probs - one_hot(y)) / n",  # the plain cross-entropy gradient
    },
    title=right.title + "; wrong claim",
)
