"""Mean cross-entropy with label smoothing alpha, with a classic wrong gradient.

Wrong: the smoothing ignored. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/cross_entropy_smoothing_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="cross_entropy_smoothing",
    title="Mean cross-entropy with label smoothing alpha; wrong claim",
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
        "logits": "(probs - one_hot(y)) / n",  # the plain cross-entropy gradient
    },
)
