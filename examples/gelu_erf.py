"""GELU, the exact form x Phi(x) = 0.5 x (1 + erf(x / sqrt(2))), and SiLU x sigmoid(x).

Both claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/gelu_erf.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="gelu_erf",
    title="GELU (erf form) of x plus SiLU of s",
    axes=("n", "D"),
    inputs={"x": ("n", "D"), "s": ("n", "D")},
    forward=(
        "out[i, j] = 0.5 * x[i, j] * (1 + erf(x[i, j] / sqrt(2))) + s[i, j] * sigmoid(s[i, j])",
    ),
    claims={
        "x": "dout * (0.5 * (1 + erf(x / sqrt(2))) + x * exp(-x**2 / 2) / sqrt(2 * pi))",
        "s": "dout * sigmoid(s) * (1 + s * (1 - sigmoid(s)))",
    },
)
