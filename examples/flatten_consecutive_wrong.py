"""FlattenConsecutive(2) then a linear layer, as in flatten_consecutive.py, with the classic
mistakes of undoing the view by hand: dx reads W's row 2*c + s % 2 (the channels interleaved,
as if the view had been (B, T2, C, 2)), and dW reads x at position t instead of 2*t (the stride
of the flattening forgotten). Each is REFUTED with the smallest exact counterexample.

Run: jaxninja derive --layer examples/flatten_consecutive_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("flatten_consecutive.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "dx[b, s, c] = sum(dout[b, s // 2, h] * W[2 * c + s % 2, h], h)",
        "W": "dW[c, h] = sum(x[b, t + c // C, c % C] * dout[b, t, h], b, t)",
    },
    title=right.title + ": channels interleaved in dx, stride forgotten in dW",
)
