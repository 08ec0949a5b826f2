"""A two-layer tanh MLP, chained through its hidden layer: h = tanh(x @ W1 + b1), out = h @ W2 + b2.

The claimed gradients are right: each one is proved, through the hidden layer.

Run: jaxninja derive --layer examples/mlp.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="mlp",
    title="Two-layer tanh MLP",
    axes=("n", "D", "H", "O"),
    inputs={"x": ("n", "D"), "W1": ("D", "H"), "b1": ("H",), "W2": ("H", "O"), "b2": ("O",)},
    forward=(
        "h[i, k] = tanh(sum(x[i, j] * W1[j, k], j) + b1[k])",
        "out[i, l] = sum(h[i, k] * W2[k, l], k) + b2[l]",
    ),
    claims={
        "x": "((dout @ W2.T) * (1 - h**2)) @ W1.T",
        "W1": "x.T @ ((dout @ W2.T) * (1 - h**2))",
        "b1": "sum((dout @ W2.T) * (1 - h**2), axis=0)",
        "W2": "h.T @ dout",
        "b2": "sum(dout, axis=0)",
    },
)
