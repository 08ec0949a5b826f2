"""FlattenConsecutive(2) as a reshape, with the classic mistake in its backward: dx groups
the flattened channels the wrong way round (channel-major, ``2 * c + s % 2``, as if the view
had interleaved the two positions' channels), and dW reads x as if the reshape had not
strided over time. Both REFUTED with a counterexample.

Run: jaxninja derive --layer examples/flatten_reshape_wrong.py   (exit 1)
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("flatten_reshape.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "dx[b, s, c] = sum(dout[b, s // 2, h] * W[2 * c + s % 2, h], h)",
        "W": "dW[c, h] = sum(x[b, t + c // C, c % C] * dout[b, t, h], b, t)",
    },
    title=right.title + ": the channels grouped the wrong way in dx, stride forgotten in dW",
)
