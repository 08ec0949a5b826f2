"""Single-head causal self-attention: a 0/1 mask M (T, T) and the 1/sqrt(head size) scale.

    att = Q @ K.T / sqrt(hs);  w = softmax of att over the unmasked keys;  out = w @ V

The mask is a fixed input (not differentiated): the weights are exp(att) * M normalised per
row, the 0/1 form of setting masked scores to -inf. The claimed gradients are right: each one
is proved, for every T and hs, and any mask with a 1 in each row.

Run: jaxninja derive --layer examples/attention.py --out kernel.py
"""

from derivations import Layer

DW = "dout @ V.T"  # d w, (T, T)
DATT = f"w * ({DW} - sum(w * ({DW}), axis=1, keepdims=True))"  # the softmax backward

layer = Layer(
    name="attention",
    title="Single-head causal self-attention, 0/1 mask, 1/sqrt(hs) scale",
    axes=("T", "hs"),
    inputs={"Q": ("T", "hs"), "K": ("T", "hs"), "V": ("T", "hs"), "M": ("T", "T")},
    fixed=("M",),
    forward=(
        "att[i, j] = sum(Q[i, l] * K[j, l], l) / sqrt(hs)",
        "s[i, j] = att[i, j] + log(M[i, j])",
        "s_max[i] = max(s[i, j], j)",
        "e[i, j] = exp(s[i, j] - s_max[i])",
        "w[i, j] = e[i, j] / sum(e[i, k], k)",
        "out[i, l] = sum(w[i, j] * V[j, l], j)",
    ),
    claims={
        "Q": f"({DATT}) @ K / sqrt(hs)",
        "K": f"({DATT}).T @ Q / sqrt(hs)",
        "V": "w.T @ dout",
    },
)
