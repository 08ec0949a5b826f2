"""The L1 loss, mean |x - t| over the batch (t a target, differentiated too).

jax's abs has gradient +1 at 0; a claim's sign(x - t) is 0 there: PROVED means equal wherever
the loss is differentiable (x != t). The claimed gradients are right: each one is proved.

Run: jaxninja derive --layer examples/l1_loss.py --out kernel.py
"""

from derivations import Layer

layer = Layer(
    name="l1_loss",
    title="L1 loss: mean |x - t|",
    axes=("n",),
    inputs={"x": ("n",), "t": ("n",)},
    forward=("loss = mean(abs(x[i] - t[i]), i)",),
    claims={"x": "sign(x - t) / n", "t": "-sign(x - t) / n"},
)
