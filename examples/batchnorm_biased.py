"""BatchNorm with the biased variance (divide by n).

The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/batchnorm_biased.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="batchnorm_biased",
    title="BatchNorm with the biased variance (divide by n)",
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
        "hprebn": "bngain * bnvar_inv / n * (n * dhpreact - sum(dhpreact, axis=0)"
        " - bnraw * sum(dhpreact * bnraw, axis=0))",
        "bngain": "sum(bnraw * dhpreact, axis=0)",
        "bnbias": "sum(dhpreact, axis=0)",
    },
)
