"""LayerNorm over the last axis of (B, T, C), with a classic wrong gradient.

Wrong: the mean of g * dout dropped from dx (the gradient through the mean forgotten). It is
refuted with a counterexample.

Run: jaxninja derive --layer examples/layernorm_3d_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("layernorm_3d.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "rinv[..., None] * (g * dout - xhat * mean(g * dout * xhat, axis=2, keepdims=True))",
        "g": "sum(dout * xhat, axis=(0, 1))",
        "b": "sum(dout, axis=(0, 1))",
    },
    title=right.title + "; wrong claim",
)
