"""makemore part 5's FlattenConsecutive(2) then a linear layer: two consecutive positions'
channels are concatenated, x (B, T, C) -> flat (B, T2, 2*C) with T = 2*T2, and mixed by W.

flat[b, t, c] = x[b, 2*t + c // C, c % C]: the first C channels come from position 2*t, the
next C from 2*t + 1 (torch's x.view(B, T // 2, 2 * C)). dx undoes the view: x[b, s, c] went to
flat[b, s // 2, (s % 2) * C + c]. Each claim is CHECKED exactly at every size up to the stated
bounds (B <= 2, T2 <= 2, C <= 3, H <= 2); dW is then PROVED for every size, while dx stays
CHECKED only (its positions c // C and c % C are not affine: no symbolic proof reaches them).

Run: jaxninja derive --layer examples/flatten_consecutive.py
"""

from derivations import Layer

layer = Layer(
    name="flatten_consecutive",
    title="FlattenConsecutive(2), then a linear layer",
    axes=("B", "T2", "C", "H"),
    sizes={"T": "2*T2"},
    inputs={"x": ("B", "T", "C"), "W": ("2*C", "H")},
    forward=(
        "flat[b, t, c] = x[b, 2*t + c // C, c % C]",
        "out[b, t, h] = sum(flat[b, t, c] * W[c, h], c)",
    ),
    shapes={"flat": ("B", "T2", "2*C")},
    claims={
        "x": "dx[b, s, c] = sum(dout[b, s // 2, h] * W[(s % 2) * C + c, h], h)",
        "W": "dW[c, h] = sum(x[b, 2*t + c // C, c % C] * dout[b, t, h], b, t)",
    },
    check_sizes={"B": 2, "T2": 2, "C": 3, "H": 2},
)
