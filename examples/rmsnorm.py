"""RMSNorm: out = g * x / sqrt(mean(x**2) + eps) over each row.

The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/rmsnorm.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="rmsnorm",
    title="RMSNorm: out = g * x / sqrt(mean(x**2) + eps) over each row",
    axes=("n", "D"),
    inputs={"x": ("n", "D"), "g": ("D",)},
    constants={"eps": "1/100000"},
    forward=(
        "ms[i] = mean(x[i, j]**2, j)",
        "rinv[i] = (ms[i] + eps)**(-1/2)",
        "xhat[i, j] = x[i, j] * rinv[i]",
        "out[i, j] = g[j] * xhat[i, j]",
    ),
    upstream="dout",
    claims={
        "x": "rinv[:, None] * (g * dout - xhat * mean(g * dout * xhat, axis=1, keepdims=True))",
        "g": "sum(dout * xhat, axis=0)",
    },
)
