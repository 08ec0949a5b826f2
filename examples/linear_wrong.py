"""Linear layer with a square W (D, D), with two classic wrong gradients.

Wrong: dx = dout @ W (shape-right, since W is square, but transposed) and db averaged over the
batch instead of summed. Both are refuted with a counterexample.

Run: jaxninja derive --layer examples/linear_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="linear_square",
    title="Linear layer with a square W (D, D); wrong claims",
    axes=("n", "D"),
    inputs={"x": ("n", "D"), "W": ("D", "D"), "b": ("D",)},
    forward=("out[i, k] = sum(x[i, j] * W[j, k], j) + b[k]",),
    claims={
        "x": "dout @ W",  # should be dout @ W.T
        "W": "x.T @ dout",
        "b": "mean(dout, axis=0)",  # should be sum(dout, axis=0)
    },
)
