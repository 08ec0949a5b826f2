"""The claim language's broadcasting rules (derivations/claims.py), one test each.

Each claim is evaluated to its index expression at the input's free indices (p, q, r) and
compared with the expression the rule says, exactly (sympy structural equality after the
same normalisation); a rule's error case is a one-line error. No derivation, no jax: cheap.
"""

from __future__ import annotations

import pytest
import sympy as sp

from derivations.usercheck import normal_dummies
from derivations.userlayer import FREE, Layer, LayerError

p, q, r = FREE[:3]
i0 = sp.Symbol("i0", integer=True, nonnegative=True)
n, D, H, T = (sp.Symbol(x, integer=True, positive=True) for x in ("n", "D", "H", "T"))


def _claim(inputs: dict, forward: str, key: str, text: str, axes=("n", "D", "H")) -> sp.Expr:
    layer = Layer("t", axes, inputs, (forward,), claims={key: text})
    return normal_dummies(layer.claims[key])


def _base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name)


x, W, g, dout, rinv = (_base(k) for k in ("x", "W", "g", "dout", "rinv"))


def test_rule_1_arrays_line_up_by_declared_axes():
    """g (D,) against dout (n, D): g's axis D pairs with dout's D, not with n."""
    got = _claim(
        {"x": ("n", "D"), "g": ("D",)}, "out[i, j] = g[j] * x[i, j]", "x", "g * dout", ("n", "D")
    )
    assert got == g[q] * dout[p, q]


def test_rule_1_a_reduced_row_statistic_lines_up_with_its_rows():
    """mean(..., axis=1) of (n, D) is (n,): subtracted from (n, D) it pairs with n."""
    got = _claim(
        {"x": ("n", "D")}, "out[i, j] = x[i, j]", "x", "dout - mean(dout, axis=1)", ("n", "D")
    )
    assert got == dout[p, q] - sp.Sum(dout[p, i0], (i0, 0, D - 1)) / D


def test_rule_2_keepdims_broadcasts_positionally():
    got = _claim(
        {"x": ("n", "D")},
        "out[i, j] = x[i, j]",
        "x",
        "dout - sum(dout, axis=0, keepdims=True)",
        ("n", "D"),
    )
    assert got == dout[p, q] - sp.Sum(dout[i0, q], (i0, 0, n - 1))


def test_rule_2_a_repeated_axis_is_positional_and_ambiguity_an_error():
    inputs = {"a": ("T", "T"), "v": ("T",)}
    forward = "out[i, j] = a[i, j] * v[j]"
    a = _base("a")
    got = _claim(inputs, forward, "a", "dout * a", ("T",))
    assert got == dout[p, q] * a[p, q]  # same rank: position by position
    with pytest.raises(LayerError, match=r"ambiguous broadcast of shape \(T,\) against \(T, T\)"):
        _claim(inputs, forward, "a", "dout * v", ("T",))
    got = _claim(inputs, forward, "v", "sum(dout * a, axis=0)", ("T",))
    assert got == sp.Sum(a[i0, p] * dout[i0, p], (i0, 0, T - 1))


def test_rule_3_sum_over_several_axes():
    got = _claim(
        {"x": ("n", "D", "H"), "g": ("H",)},
        "out[i, j, k] = g[k] * x[i, j, k]",
        "g",
        "sum(dout * x, axis=(0, 1))",
    )
    inner = sp.Symbol("i1", integer=True, nonnegative=True)
    assert got == sp.Sum(dout[i0, inner, p] * x[i0, inner, p], (i0, 0, n - 1), (inner, 0, D - 1))


def test_rule_4_matmul_transpose_and_einsum_agree():
    inputs = {"x": ("n", "D"), "W": ("D", "H")}
    forward = "out[i, k] = sum(x[i, j] * W[j, k], j)"
    by_matmul = _claim(inputs, forward, "x", "dout @ W.T")
    by_einsum = _claim(inputs, forward, "x", "einsum('nh,dh->nd', dout, W)")
    assert by_matmul == by_einsum == sp.Sum(W[q, i0] * dout[p, i0], (i0, 0, H - 1))


def test_rule_5_the_value_lines_up_with_the_input_and_a_kept_axis_is_an_error():
    inputs = {"x": ("n", "D"), "W": ("D", "H")}
    forward = "out[i, k] = sum(x[i, j] * W[j, k], j)"
    with pytest.raises(LayerError, match="W has shape \\(D, H\\) but the claim keeps axis n"):
        _claim(inputs, forward, "W", "x * dout")  # (n, D) x (n, H) keeps n
    with pytest.raises(LayerError, match="@: shape mismatch"):
        _claim(inputs, forward, "x", "dout @ W")  # (n, H) @ (D, H)


def test_a_constant_claim_broadcasts_to_the_input():
    got = _claim({"x": ("n", "D")}, "out = sum(sum(x[i, j], j), i)", "x", "1", ("n", "D"))
    assert got == 1
