"""ReLU6: minimum(maximum(x, 0), 6), on (n, D).

The claimed gradient is right: it is proved.

Run: jaxninja derive --layer examples/relu6.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="relu6",
    title="ReLU6: minimum(maximum(x, 0), 6)",
    axes=("n", "D"),
    inputs={"x": ("n", "D")},
    forward=("out[i, j] = minimum(maximum(x[i, j], 0), 6)",),
    claims={"x": "dout * (x > 0) * (x < 6)"},
)
