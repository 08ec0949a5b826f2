"""A corpus of gradient identities stated the way a learner would: Matrix Cookbook equations and
standard backprop results, each with a right claim and a wrong twin (the classic mistake: a
transpose missing, a symmetric shortcut, a term or a factor dropped, the wrong axis).

Shared by the test that every right claim is PROVED and every twin refuted
(``tests/derivations/engine/test_corpus.py``) and by the benchmark that times each
(``python -m benchmarks.derive_examples --corpus``). Written for this project from the
identities' textbook statements: d tr(AX)/dX = A^T, d x^T A x/dx = (A + A^T) x, and so on.
"""

from __future__ import annotations

from typing import NamedTuple


class Identity(NamedTuple):
    """One identity: a layer statement (``Layer``'s keyword arguments but the claims), the input
    claimed, the right claim and its wrong twin."""

    name: str
    statement: dict
    key: str
    right: str
    wrong: str


def _state(axes: tuple, inputs: dict, *forward: str, **extra) -> dict:
    return {"axes": axes, "inputs": inputs, "forward": forward, **extra}


IDENTITIES = (
    Identity(
        "trace_AX",  # Matrix Cookbook (100): d tr(AX) / dX = A^T
        _state(
            ("D", "H"), {"X": ("D", "H"), "A": ("H", "D")}, "loss = sum(A[j, i] * X[i, j], i, j)"
        ),
        "X",
        "A.T",
        "A",
    ),
    Identity(
        "quadratic_form",  # (81): d x^T A x / dx = (A + A^T) x; 2 A x only for a symmetric A
        _state(("D",), {"x": ("D",), "A": ("D", "D")}, "loss = sum(x[i] * A[i, j] * x[j], i, j)"),
        "x",
        "(A + A.T) @ x",
        "2 * A @ x",
    ),
    Identity(
        "trace_XtAX",  # (108): d tr(X^T A X) / dX = (A + A^T) X
        _state(
            ("D", "H"),
            {"X": ("D", "H"), "A": ("D", "D")},
            "loss = sum(X[i, k] * A[i, j] * X[j, k], i, j, k)",
        ),
        "X",
        "(A + A.T) @ X",
        "2 * A @ X",
    ),
    Identity(
        "bilinear_aXb",  # (70): d a^T X b / dX = a b^T
        _state(
            ("D", "H"),
            {"X": ("D", "H"), "a": ("D",), "b": ("H",)},
            "loss = sum(a[i] * X[i, j] * b[j], i, j)",
        ),
        "X",
        "a[:, None] * b",
        "b[:, None] * a",
    ),
    Identity(
        "frobenius_norm",  # (103): d ||X||_F^2 / dX = 2 X
        _state(("D", "H"), {"X": ("D", "H")}, "loss = sum(X[i, j]**2, i, j)"),
        "X",
        "2 * X",
        "X",
    ),
    Identity(
        "mse",  # mean squared error: 2 (x - t) / (n D); the mean's count forgotten in part
        _state(
            ("n", "D"),
            {"x": ("n", "D"), "t": ("n", "D")},
            "loss = mean((x[i, j] - t[i, j])**2, i, j)",
        ),
        "x",
        "2 * (x - t) / (n * D)",
        "2 * (x - t) / n",
    ),
    Identity(
        "linear_weight",  # y = x W: dW = x^T dout; the operands swapped give W's transpose
        _state(
            ("n", "D", "H"),
            {"x": ("n", "D"), "W": ("D", "H")},
            "y[i, k] = sum(x[i, j] * W[j, k], j)",
        ),
        "W",
        "x.T @ dout",
        "dout.T @ x",
    ),
    Identity(
        "linear_input",  # y = x W^T with W (H, D): dx = dout W; dout W^T is the square-only slip
        _state(
            ("n", "D", "H"),
            {"x": ("n", "D"), "W": ("H", "D")},
            "y[i, k] = sum(x[i, j] * W[k, j], j)",
        ),
        "x",
        "dout @ W",
        "dout @ W.T",
    ),
    Identity(
        "sigmoid",  # sigma' = sigma (1 - sigma)
        _state(("n", "D"), {"x": ("n", "D")}, "s[i, j] = sigmoid(x[i, j])"),
        "x",
        "dout * s * (1 - s)",
        "dout * s",
    ),
    Identity(
        "tanh",  # tanh' = 1 - tanh^2, of the output, not of the input
        _state(("n", "D"), {"x": ("n", "D")}, "h[i, j] = tanh(x[i, j])"),
        "x",
        "dout * (1 - h**2)",
        "dout * (1 - x**2)",
    ),
    Identity(
        "softmax",  # ds: s * (dout - sum(dout * s) over the softmax's own axis)
        _state(
            ("n", "V"),
            {"x": ("n", "V")},
            "e[i, j] = exp(x[i, j])",
            "s[i, j] = e[i, j] / sum(e[i, k], k)",
        ),
        "x",
        "s * (dout - sum(dout * s, axis=1, keepdims=True))",
        "s * (dout - sum(dout * s, axis=0, keepdims=True))",
    ),
    Identity(
        "logsumexp",  # d logsumexp / dx = softmax(x); the normaliser forgotten
        _state(("n", "V"), {"x": ("n", "V")}, "out[i] = log(sum(exp(x[i, j]), j))"),
        "x",
        "dout[:, None] * exp(x) / sum(exp(x), axis=1, keepdims=True)",
        "dout[:, None] * exp(x)",
    ),
    Identity(
        "gain",  # out = g * x: dg sums over the batch axis, not over the features
        _state(("n", "D"), {"x": ("n", "D"), "g": ("D",)}, "out[i, j] = g[j] * x[i, j]"),
        "g",
        "sum(dout * x, axis=0)",
        "sum(dout * x, axis=1)",
    ),
    Identity(
        "batched_weight",  # out[b, t] = x[b, t] W: dW sums over b and t, letters in order
        _state(
            ("B", "T", "C", "H"),
            {"x": ("B", "T", "C"), "W": ("C", "H")},
            "out[b, t, h] = sum(x[b, t, c] * W[c, h], c)",
        ),
        "W",
        "einsum('btc,bth->ch', x, dout)",
        "einsum('btc,bth->hc', x, dout)",
    ),
    Identity(
        "row_max",  # d max_j x[i, j] / dx: to the max's positions, a tie split (jax); no split
        _state(("n", "V"), {"x": ("n", "V")}, "m[i] = max(x[i, j], j)"),
        "x",
        "where(x == m[:, None], dout[:, None], 0) / sum(x == m[:, None], axis=1, keepdims=True)",
        "where(x == m[:, None], dout[:, None], 0)",
    ),
    Identity(
        "max_pool_2d",  # one max over both axes: its ties counted over both, not one
        _state(("n", "H", "W"), {"x": ("n", "H", "W")}, "m[i] = max(x[i, j, k], j, k)"),
        "x",
        "(x == m[:, None, None]) * (dout / sum(x == m[:, None, None], axis=(1, 2)))[:, None, None]",
        "(x == m[:, None, None]) / sum(x == m[:, None, None], axis=1, keepdims=True)"
        " * dout[:, None, None]",
    ),
)
