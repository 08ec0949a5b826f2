"""FlattenConsecutive(2) then a linear layer, as in flatten_consecutive.py, with the classic
mistakes of undoing the view by hand: dx reads W's row 2*c + s % 2 (the channels interleaved,
as if the view had been (B, T2, C, 2)), and dW reads x at position t instead of 2*t (the stride
of the flattening forgotten). Each is REFUTED with the smallest exact counterexample.

Run: jaxninja derive --layer examples/flatten_consecutive_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="flatten_consecutive_wrong",
    title="FlattenConsecutive(2), then a linear layer: interleaved dx, stride forgotten in dW",
    axes=("B", "T2", "C", "H"),
    sizes={"T": "2*T2"},
    inputs={"x": ("B", "T", "C"), "W": ("2*C", "H")},
    forward=(
        "flat[b, t, c] = x[b, 2*t + c // C, c % C]",
        "out[b, t, h] = sum(flat[b, t, c] * W[c, h], c)",
    ),
    shapes={"flat": ("B", "T2", "2*C")},
    claims={
        "x": "dx[b, s, c] = sum(dout[b, s // 2, h] * W[2 * c + s % 2, h], h)",
        "W": "dW[c, h] = sum(x[b, t + c // C, c % C] * dout[b, t, h], b, t)",
    },
    check_sizes={"B": 2, "T2": 2, "C": 3, "H": 2},
)
