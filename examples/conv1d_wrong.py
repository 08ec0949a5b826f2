"""The 1-D convolution of conv1d.py with two classic mistakes: the stride forgotten in dx
(dout read at s + P - k, as for stride 1) and the padding off by one in dw (x read at 2*t + k,
the padding dropped). Each is REFUTED with the smallest exact counterexample.

Run: jaxninja derive --layer examples/conv1d_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="conv1d_wrong",
    title="1-D convolution, stride 2, padding 1: stride forgotten in dx, padding off in dw",
    axes=("B", "T", "K", "C", "H"),
    sizes={"L": "2*T"},
    inputs={"x": ("B", "L", "C"), "w": ("K", "C", "H"), "bias": ("H",)},
    constants={"P": 1},
    forward=("out[b, t, h] = sum(x[b, 2*t + k - P, c] * w[k, c, h], k, c) + bias[h]",),
    shapes={"out": ("B", "T", "H")},
    claims={
        "x": "dx[b, s, c] = sum(dout[b, s + P - k, h] * w[k, c, h], k, h)",
        "w": "dw[k, c, h] = sum(dout[b, t, h] * x[b, 2*t + k, c], b, t)",
        "bias": "sum(dout, axis=(0, 1))",
    },
    check_sizes={"B": 2, "T": 3, "K": 3, "C": 2, "H": 2},
)
