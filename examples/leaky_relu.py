"""Leaky ReLU with slope 1/100 below 0, on (n, D).

The claimed gradient is right: it is proved.

Run: jaxninja derive --layer examples/leaky_relu.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="leaky_relu",
    title="Leaky ReLU, slope 0.01",
    axes=("n", "D"),
    inputs={"x": ("n", "D")},
    forward=("out[i, j] = where(x[i, j] > 0, x[i, j], 0.01 * x[i, j])",),
    claims={"x": "where(x > 0, dout, 0.01 * dout)"},
)
