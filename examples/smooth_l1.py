"""torch's smooth L1 loss with beta = 1/2: r**2 / (2 beta) where |r| < beta, else |r| - beta / 2.

Its gradient is r / beta clipped to [-1, 1]. The claimed gradient is right: it is proved.

Run: jaxninja derive --layer examples/smooth_l1.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="smooth_l1",
    title="Smooth L1 loss, beta = 1/2",
    axes=("n",),
    inputs={"x": ("n",), "t": ("n",)},
    constants={"beta": "1/2"},
    forward=(
        "r[i] = x[i] - t[i]",
        "loss = mean(where(abs(r[i]) < beta, r[i]**2 / (2 * beta), abs(r[i]) - beta / 2), i)",
    ),
    claims={"x": "clip(r / beta, -1, 1) / n", "t": "-clip(r / beta, -1, 1) / n"},
)
