"""makemore part 5's BatchNorm1d on (B, T, C) input: statistics over dims (0, 1).

Part 5's custom BatchNorm1d takes the mean and the (Bessel-corrected, torch's default) variance
over dims (0, 1) of a 3-D input: every position of every sequence is one sample of each channel.
The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/batchnorm1d_3d.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="batchnorm1d_3d",
    title="BatchNorm1d on (B, T, C), statistics over (0, 1), Bessel-corrected variance",
    axes=("B", "T", "C"),
    inputs={"x": ("B", "T", "C"), "gamma": ("C",), "beta": ("C",)},
    constants={"eps": "1/100000"},
    forward=(
        "xmean[k] = mean(x[i, j, k], i, j)",
        "xc[i, j, k] = x[i, j, k] - xmean[k]",
        "xvar[k] = sum(xc[i, j, k]**2, i, j) / (B * T - 1)",
        "rinv[k] = (xvar[k] + eps)**(-1/2)",
        "xhat[i, j, k] = xc[i, j, k] * rinv[k]",
        "out[i, j, k] = gamma[k] * xhat[i, j, k] + beta[k]",
    ),
    claims={
        "x": "gamma * rinv / (B * T) * (B * T * dout - sum(dout, axis=(0, 1))"
        " - B * T / (B * T - 1) * xhat * sum(dout * xhat, axis=(0, 1)))",
        "gamma": "sum(dout * xhat, axis=(0, 1))",
        "beta": "sum(dout, axis=(0, 1))",
    },
)
