"""Mean cross-entropy with label smoothing alpha.

The logits are shifted by their maximum before ``exp`` (a shift: d loss / d logit_maxes = 0 is
proved), so the kernel is safe in float32 at any logit. The claimed gradient is right: it is
proved.

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
        "logit_maxes[i] = max(logits[i, j], j)",
        "norm_logits[i, j] = logits[i, j] - logit_maxes[i]",
        "counts[i, j] = exp(norm_logits[i, j])",
        "counts_sum[i] = sum(counts[i, j], j)",
        "probs[i, j] = counts[i, j] / counts_sum[i]",
        "logprobs[i, j] = norm_logits[i, j] - log(counts_sum[i])",
        "target[i, j] = (1 - alpha) * one_hot(y[i], j) + alpha / V",
        "loss = -sum(sum(target[i, j] * logprobs[i, j], j), i) / n",
    ),
    claims={
        "logits": "(probs - (1 - alpha) * one_hot(y) - alpha / V) / n",
    },
)
