"""Hard tanh: clip(x, -1, 1) element-wise, on (n, D).

Its gradient passes dout where -1 < x < 1 (jnp.clip gives 1/2 at either bound). The claimed
gradient is right: it is proved.

Run: jaxninja derive --layer examples/hard_tanh.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="hard_tanh",
    title="Hard tanh: clip(x, -1, 1)",
    axes=("n", "D"),
    inputs={"x": ("n", "D")},
    forward=("out[i, j] = clip(x[i, j], -1, 1)",),
    claims={"x": "where(abs(x) < 1, dout, 0)"},
)
