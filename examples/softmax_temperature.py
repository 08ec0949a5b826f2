"""Softmax with temperature T over the V classes.

The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/softmax_temperature.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="softmax_temperature",
    title="Softmax with temperature T over the V classes",
    axes=("n", "V"),
    inputs={"logits": ("n", "V")},
    constants={"T": "2"},
    forward=(
        "counts[i, j] = exp(logits[i, j] / T)",
        "counts_sum[i] = sum(counts[i, j], j)",
        "probs[i, j] = counts[i, j] / counts_sum[i]",
    ),
    upstream="dprobs",
    claims={
        "logits": "probs * (dprobs - sum(dprobs * probs, axis=1, keepdims=True)) / T",
    },
)
