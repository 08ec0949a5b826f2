"""Linear layer out = x @ W + b: the first layer anyone states after the lecture.

The claimed gradients are right: each one is proved, for every n, D, H.

Run: jaxninja derive --layer examples/linear.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="linear",
    title="Linear layer out = x @ W + b",
    axes=("n", "D", "H"),
    inputs={"x": ("n", "D"), "W": ("D", "H"), "b": ("H",)},
    forward=("out[i, k] = sum(x[i, j] * W[j, k], j) + b[k]",),
    claims={
        "x": "dout @ W.T",
        "W": "x.T @ dout",
        "b": "sum(dout, axis=0)",
    },
)
