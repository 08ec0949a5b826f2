"""Single-head causal self-attention with two classic wrong gradients.

Wrong: the 1/sqrt(hs) scale dropped from dQ, and the mask ignored in the backward of dK (the
softmax's backward taken with the unmasked weights exp(att) / sum(exp(att))). Both are refuted
with a counterexample.

Run: jaxninja derive --layer examples/attention_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("attention.py"))  # the same forward
DW = "dout @ V.T"
P = "exp(att) / sum(exp(att), axis=1, keepdims=True)"  # the mask forgotten
layer = right.with_claims(
    {
        "Q": f"(w * ({DW} - sum(w * ({DW}), axis=1, keepdims=True))) @ K",
        "K": f"({P} * ({DW} - sum({P} * ({DW}), axis=1, keepdims=True))).T @ Q / sqrt(hs)",
        "V": "w.T @ dout",
    },
    title=right.title + "; wrong claims",
)
