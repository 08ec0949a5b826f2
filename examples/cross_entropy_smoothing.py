"""Mean cross-entropy with label smoothing alpha.

The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/cross_entropy_smoothing.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="cross_entropy_smoothing",
    title="Mean cross-entropy with label smoothing alpha",
    axes=("n", "V"),
    inputs={"logits": ("n", "V")},
    labels={"y": (("n",), "V")},
    constants={"alpha": "1/10"},
    forward=(
        "counts[i, j] = exp(logits[i, j])",
        "counts_sum[i] = sum(counts[i, j], j)",
        "probs[i, j] = counts[i, j] / counts_sum[i]",
        "target[i, j] = (1 - alpha) * one_hot(y[i], j) + alpha / V",
        "loss = -sum(sum(target[i, j] * log(probs[i, j]), j), i) / n",
    ),
    claims={
        "logits": "(probs - (1 - alpha) * one_hot(y) - alpha / V) / n",
    },
)
