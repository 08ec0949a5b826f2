"""makemore part 5's FlattenConsecutive(2) stated as torch writes it, a reshape: x (B, T, C)
-> flat (B, T2, 2*C) with T = 2*T2 (``x.view(B, T // 2, 2 * C)``), then a linear layer.

``flat = reshape(x, (B, T2, 2*C))`` is numpy's row-major reshape; the engine reads it as an
index line, each element at the same row-major position (``x[b, (t*(2*C) + c) // C, (t*(2*C) +
c) % C]``, the form ``flatten_consecutive.py`` writes by hand as ``x[b, 2*t + c // C, c %
C]``). The claims are the same: dx undoes the view, dW reads the pairs. Both are CHECKED
exactly at every size up to the stated bounds (not PROVED: the reshape's positions are not
affine; the hand-written form's dW is also PROVED).

Run: jaxninja derive --layer examples/flatten_reshape.py
"""

from derivations import Layer

layer = Layer(
    name="flatten_reshape",
    title="FlattenConsecutive(2) as a reshape, then a linear layer",
    axes=("B", "T2", "C", "H"),
    sizes={"T": "2*T2"},
    inputs={"x": ("B", "T", "C"), "W": ("2*C", "H")},
    forward=(
        "flat = reshape(x, (B, T2, 2*C))",
        "out[b, t, h] = sum(flat[b, t, c] * W[c, h], c)",
    ),
    claims={
        "x": "dx[b, s, c] = sum(dout[b, s // 2, h] * W[(s % 2) * C + c, h], h)",
        "W": "dW[c, h] = sum(x[b, 2*t + c // C, c % C] * dout[b, t, h], b, t)",
    },
    check_sizes={"B": 2, "T2": 2, "C": 3, "H": 2},
)
