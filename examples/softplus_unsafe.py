"""Softplus with a right gradient that is numerically unsafe: exp(x) / (1 + exp(x)).

Proved (it equals sigmoid(x) for every real x), but its kernel is nan in float32 past x = 88,
where exp overflows: derive reports `numerically unsafe: dx for |x| > 88: exp overflows` and
exits 1 without writing the kernel (--allow-unsafe writes it, exit 0).

Run: jaxninja derive --layer examples/softplus_unsafe.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("softplus.py"))  # the same forward
layer = right.with_claims(
    {"x": "dout * exp(x) / (1 + exp(x))"}, title=right.title + "; an unsafe claim"
)
