"""The Huber loss with delta = 1: r**2 / 2 where |r| <= delta, else delta * (|r| - delta / 2).

Its gradient is r clipped to [-delta, delta]. The claimed gradient is right: it is proved.

Run: jaxninja derive --layer examples/huber.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="huber",
    title="Huber loss, delta = 1",
    axes=("n",),
    inputs={"x": ("n",), "t": ("n",)},
    constants={"delta": "1"},
    forward=(
        "r[i] = x[i] - t[i]",
        "loss = mean(where(abs(r[i]) <= delta, r[i]**2 / 2, delta * (abs(r[i]) - delta / 2)), i)",
    ),
    claims={"x": "clip(r, -delta, delta) / n", "t": "-clip(r, -delta, delta) / n"},
)
