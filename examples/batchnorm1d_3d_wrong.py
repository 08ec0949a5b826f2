"""BatchNorm1d on (B, T, C) with part 5's bug carried into the backward.

Wrong: the statistics of dim 0 only (what BatchNorm1d does when it is handed a 3-D input and
reduces over dim 0, the bug makemore part 5 fixes): the batch gradient formula per time step,
with keepdims sums over axis 0. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/batchnorm1d_3d_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("batchnorm1d_3d.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "gamma * rinv / B * (B * dout - sum(dout, axis=0, keepdims=True)"
        " - B / (B - 1) * xhat * sum(dout * xhat, axis=0, keepdims=True))",
        "gamma": "sum(dout * xhat, axis=(0, 1))",
        "beta": "sum(dout, axis=(0, 1))",
    },
    title=right.title + "; wrong claim (statistics of dim 0 only)",
)
