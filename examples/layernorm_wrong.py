"""LayerNorm over each row's D features (biased variance), with a classic wrong gradient.

Wrong: the variance path dropped. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/layernorm_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="layernorm",
    title="LayerNorm over each row's D features (biased variance); wrong claim",
    axes=("n", "D"),
    inputs={"x": ("n", "D"), "g": ("D",), "b": ("D",)},
    constants={"eps": "1/100000"},
    forward=(
        "mu[i] = mean(x[i, j], j)",
        "xc[i, j] = x[i, j] - mu[i]",
        "var[i] = mean(xc[i, j]**2, j)",
        "rinv[i] = (var[i] + eps)**(-1/2)",
        "xhat[i, j] = xc[i, j] * rinv[i]",
        "out[i, j] = g[j] * xhat[i, j] + b[j]",
    ),
    upstream="dout",
    claims={
        "x": "rinv * (g * dout - mean(g * dout, axis=1))",  # as if var did not depend on x
        "g": "sum(dout * xhat, axis=0)",
        "b": "sum(dout, axis=0)",
    },
)
