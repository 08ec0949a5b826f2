"""The 1-D convolution of conv1d.py with two classic mistakes: the stride forgotten in dx
(dout read at s + P - k, as for stride 1) and the padding dropped in dw (x read at 2*t + k).
Each is REFUTED with the smallest exact counterexample; the bias's claim is CHECKED.

Run: jaxninja derive --layer examples/conv1d_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("conv1d.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "dx[b, s, c] = sum(dout[b, s + P - k, h] * w[k, c, h], k, h)",
        "w": "dw[k, c, h] = sum(dout[b, t, h] * x[b, 2*t + k, c], b, t)",
        "bias": "sum(dout, axis=(0, 1))",
    },
    title=right.title + ": stride forgotten in dx, padding dropped in dw",
)
