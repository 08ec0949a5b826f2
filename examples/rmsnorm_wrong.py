"""RMSNorm: out = g * x / sqrt(mean(x**2) + eps) over each row, with a classic wrong gradient.

Wrong: rinv held constant. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/rmsnorm_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="rmsnorm",
    title="RMSNorm: out = g * x / sqrt(mean(x**2) + eps) over each row; wrong claim",
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
        "x": "g * dout * rinv",  # forgets that rinv depends on x
        "g": "sum(dout * xhat, axis=0)",
    },
)
