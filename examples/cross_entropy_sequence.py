"""Cross-entropy over a sequence: logits (B, T, V), targets (B, T), the mean over B * T.

The logits are shifted by their maximum before ``exp`` (the shift cancels in probs: the engine
proves d loss / d logit_maxes = 0), so the kernel is safe in float32 at any logit; without it,
exp overflows past 88. The claimed gradient is right: it is proved.

Run: jaxninja derive --layer examples/cross_entropy_sequence.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="cross_entropy_sequence",
    title="Sequence cross-entropy over (B, T, V), mean over every position",
    axes=("B", "T", "V"),
    inputs={"logits": ("B", "T", "V")},
    labels={"y": (("B", "T"), "V")},
    forward=(
        "logit_maxes[i, j] = max(logits[i, j, k], k)",
        "counts[i, j, k] = exp(logits[i, j, k] - logit_maxes[i, j])",
        "counts_sum[i, j] = sum(counts[i, j, k], k)",
        "probs[i, j, k] = counts[i, j, k] / counts_sum[i, j]",
        "loss = -mean(sum(one_hot(y[i, j], k) * log(probs[i, j, k]), k), i, j)",
    ),
    claims={"logits": "(probs - one_hot(y)) / (B * T)"},
)
