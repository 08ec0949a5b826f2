"""A 1-D convolution with padding and stride: out[b, t, h] reads x at 2*t + k - P.

Each output position t reads the window x[b, 2*t + k - P, :] for k < K (stride 2, padding P = 1:
a read outside x is zero) against the weight w[k, c, h], plus a bias. The input has L = 2*T
positions. The gradients are right: each claim is CHECKED exactly at every size up to the stated
bounds (B <= 2, T <= 3, K <= 3, C <= 2, H <= 2), then PROVED for every size (the deltas of the
affine positions summed out).

dx is the transposed convolution: x[b, s, c] fed every out[b, t, h] with 2*t + k - P = s, that
is t = (s + P - k) / 2, a position that is not an integer where s + P - k is odd (read as zero).

Run: jaxninja derive --layer examples/conv1d.py
"""

from derivations import Layer

layer = Layer(
    name="conv1d",
    title="1-D convolution, stride 2, padding 1",
    axes=("B", "T", "K", "C", "H"),
    sizes={"L": "2*T"},
    inputs={"x": ("B", "L", "C"), "w": ("K", "C", "H"), "bias": ("H",)},
    constants={"P": 1},
    forward=("out[b, t, h] = sum(x[b, 2*t + k - P, c] * w[k, c, h], k, c) + bias[h]",),
    shapes={"out": ("B", "T", "H")},
    claims={
        "x": "dx[b, s, c] = sum(dout[b, (s + P - k) / 2, h] * w[k, c, h], k, h)",
        "w": "dw[k, c, h] = sum(dout[b, t, h] * x[b, 2*t + k - P, c], b, t)",
        "bias": "sum(dout, axis=(0, 1))",
    },
    check_sizes={"B": 2, "T": 3, "K": 3, "C": 2, "H": 2},
)
