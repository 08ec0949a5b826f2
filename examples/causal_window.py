"""A causal window: out[b, t] = sum over k < K of w[k] * x[b, t - k], reading only the past (a
read before position 0 is zero), as a causal (WaveNet-style) convolution does.

dx runs the window forward in time: x[b, s] feeds out[b, s + k] (zero past the end), and dw
correlates dout with the delayed input. Each claim is CHECKED exactly at every size up to the
stated bounds (B <= 2, T <= 5, K <= 3), then PROVED for every size.

Run: jaxninja derive --layer examples/causal_window.py
"""

from derivations import Layer

layer = Layer(
    name="causal_window",
    title="Causal window out[b, t] = sum_k w[k] x[b, t - k]",
    axes=("B", "T", "K"),
    inputs={"x": ("B", "T"), "w": ("K",)},
    forward=("out[b, t] = sum(w[k] * x[b, t - k], k)",),
    shapes={"out": ("B", "T")},
    claims={
        "x": "dx[b, s] = sum(dout[b, s + k] * w[k], k)",
        "w": "dw[k] = sum(dout[b, t] * x[b, t - k], b, t)",
    },
    check_sizes={"B": 2, "T": 5, "K": 3},
)
