"""GELU, the tanh approximation GPT-2 uses: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

The claimed gradient is right: it is proved.

Run: jaxninja derive --layer examples/gelu.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="gelu",
    title="GELU, tanh approximation",
    axes=("n", "D"),
    inputs={"x": ("n", "D")},
    constants={"c": "0.044715"},
    forward=(
        "u[i, j] = sqrt(2 / pi) * (x[i, j] + c * x[i, j]**3)",
        "t[i, j] = tanh(u[i, j])",
        "out[i, j] = 0.5 * x[i, j] * (1 + t[i, j])",
    ),
    claims={
        "x": "dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * sqrt(2 / pi) * (1 + 3 * c * x**2))",
    },
)
