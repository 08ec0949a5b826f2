"""LayerNorm over each row's D features (biased variance), with a classic wrong gradient.

Wrong: the variance path dropped. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/layernorm_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("layernorm.py"))  # the same forward
layer = right.with_claims(
    {
        # as if var did not depend on x
        "x": "rinv[:, None] * (g * dout - mean(g * dout, axis=1, keepdims=True))",
        "g": "sum(dout * xhat, axis=0)",
        "b": "sum(dout, axis=0)",
    },
    title=right.title + "; wrong claim",
)
