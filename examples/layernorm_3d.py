"""LayerNorm over the last axis of (B, T, C), as in GPT (biased variance).

The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/layernorm_3d.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="layernorm_3d",
    title="LayerNorm over the last axis of (B, T, C)",
    axes=("B", "T", "C"),
    inputs={"x": ("B", "T", "C"), "g": ("C",), "b": ("C",)},
    constants={"eps": "1/100000"},
    forward=(
        "mu[i, j] = mean(x[i, j, k], k)",
        "xc[i, j, k] = x[i, j, k] - mu[i, j]",
        "var[i, j] = mean(xc[i, j, k]**2, k)",
        "rinv[i, j] = (var[i, j] + eps)**(-1/2)",
        "xhat[i, j, k] = xc[i, j, k] * rinv[i, j]",
        "out[i, j, k] = g[k] * xhat[i, j, k] + b[k]",
    ),
    claims={
        "x": "rinv[..., None] * (g * dout - mean(g * dout, axis=2, keepdims=True)"
        " - xhat * mean(g * dout * xhat, axis=2, keepdims=True))",
        "g": "sum(dout * xhat, axis=(0, 1))",
        "b": "sum(dout, axis=(0, 1))",
    },
)
