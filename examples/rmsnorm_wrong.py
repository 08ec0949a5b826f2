"""RMSNorm: out = g * x / sqrt(mean(x**2) + eps) over each row, with a classic wrong gradient.

Wrong: rinv held constant. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/rmsnorm_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("rmsnorm.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "g * dout * rinv[:, None]",  # forgets that rinv depends on x
        "g": "sum(dout * xhat, axis=0)",
    },
    title=right.title + "; wrong claim",
)
