"""Softplus, log(1 + exp(x)), element-wise on (n, D), with its numerically stable gradient.

The claim dout * sigmoid(x) is proved, and its kernel (printed from the claim, sigmoid as
jax.nn.sigmoid) is safe in float32 at every |x| up to 100. The gradient as derived,
exp(x) * dout / (exp(x) + 1), is the same function and nan past x = 88 in float32 (exp
overflows): softplus_unsafe.py states it as the claim, and derive reports it unsafe.

Run: jaxninja derive --layer examples/softplus.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="softplus",
    title="Softplus log(1 + exp(x)), element-wise",
    axes=("n", "D"),
    inputs={"x": ("n", "D")},
    forward=("out[i, j] = log(1 + exp(x[i, j]))",),
    claims={"x": "dout * sigmoid(x)"},
)
