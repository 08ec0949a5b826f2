"""BatchNorm with the biased variance (divide by n), with a classic wrong gradient.

Wrong: the lecture's Bessel n/(n-1) kept. It is refuted with a counterexample.

Run: jaxninja derive --layer examples/batchnorm_biased_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="batchnorm_biased",
    title="BatchNorm with the biased variance (divide by n); wrong claim",
    axes=("n", "H"),
    inputs={"hprebn": ("n", "H"), "bngain": ("H",), "bnbias": ("H",)},
    constants={"eps": "1/100000"},
    forward=(
        "bnmeani[j] = mean(hprebn[i, j], i)",
        "bndiff[i, j] = hprebn[i, j] - bnmeani[j]",
        "bnvar[j] = mean(bndiff[i, j]**2, i)",
        "bnvar_inv[j] = (bnvar[j] + eps)**(-1/2)",
        "bnraw[i, j] = bndiff[i, j] * bnvar_inv[j]",
        "hpreact[i, j] = bngain[j] * bnraw[i, j] + bnbias[j]",
    ),
    upstream="dhpreact",
    claims={
        # the lecture's formula, right for Bessel's variance (n - 1), not for this forward
        "hprebn": "bngain * bnvar_inv / n * (n * dhpreact - sum(dhpreact, axis=0)"
        " - n / (n - 1) * bnraw * sum(dhpreact * bnraw, axis=0))",
        "bngain": "sum(bnraw * dhpreact, axis=0)",
        "bnbias": "sum(dhpreact, axis=0)",
    },
)
