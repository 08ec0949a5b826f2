"""LayerNorm over each row's D features (biased variance).

The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/layernorm.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="layernorm",
    title="LayerNorm over each row's D features (biased variance)",
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
        "x": "rinv[:, None] * (g * dout - mean(g * dout, axis=1, keepdims=True)"
        " - xhat * mean(g * dout * xhat, axis=1, keepdims=True))",
        "g": "sum(dout * xhat, axis=0)",
        "b": "sum(dout, axis=0)",
    },
)
