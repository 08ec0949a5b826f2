"""The causal window of causal_window.py with the classic mistakes: dx with the window flipped
(dout read at s - k, the past, as the forward reads x) and dw off by one (x read at t - k + 1).
Each is REFUTED with the smallest exact counterexample.

Run: jaxninja derive --layer examples/causal_window_wrong.py
"""

from pathlib import Path

from derivations import load_layer

right = load_layer(Path(__file__).with_name("causal_window.py"))  # the same forward
layer = right.with_claims(
    {
        "x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)",
        "w": "dw[k] = sum(dout[b, t] * x[b, t - k + 1], b, t)",
    },
    title=right.title + ": window flipped in dx, off by one in dw",
)
