"""BatchNorm with the biased variance (divide by n), with a classic wrong gradient.

Wrong: the lecture's Bessel n/(n-1) kept. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/batchnorm_biased_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("batchnorm_biased.py"))  # the same forward
layer = right.with_claims(
    {
        # the lecture's formula, right for Bessel's variance (n - 1), not for this forward
        "hprebn": "bngain * bnvar_inv / n * (n * dhpreact - sum(dhpreact, axis=0)"
        " - n / (n - 1) * bnraw * sum(dhpreact * bnraw, axis=0))",
        "bngain": "sum(bnraw * dhpreact, axis=0)",
        "bnbias": "sum(dhpreact, axis=0)",
    },
    title=right.title + "; wrong claim",
)
