"""The causal window of causal_window.py with the classic mistakes: dx with the window flipped
(dout read at s - k, the past, as the forward reads x) and dw off by one (x read at t - k + 1).
Each is REFUTED with the smallest exact counterexample.

Run: jaxninja derive --layer examples/causal_window_wrong.py
"""

from derivations import Layer

layer = Layer(
    name="causal_window_wrong",
    title="Causal window: flipped window in dx, off by one in dw",
    axes=("B", "T", "K"),
    inputs={"x": ("B", "T"), "w": ("K",)},
    forward=("out[b, t] = sum(w[k] * x[b, t - k], k)",),
    shapes={"out": ("B", "T")},
    claims={
        "x": "dx[b, s] = sum(dout[b, s - k] * w[k], k)",
        "w": "dw[k] = sum(dout[b, t] * x[b, t - k + 1], b, t)",
    },
    check_sizes={"B": 2, "T": 5, "K": 3},
)
