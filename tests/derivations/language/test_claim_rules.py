"""The claim language's rules (derivations/language/claims.py), numpy's, one test each.

Each claim is evaluated to its index expression at the input's free indices (p, q, r) and
compared with the expression the rule says, exactly (sympy structural equality after the
same normalisation); a shape numpy would not run as the input's is a ShapeMismatch. No
derivation, no jax: cheap.
"""

from __future__ import annotations

import pytest
import sympy as sp

from derivations.engine.derive import normal_dummies
from derivations.language.layer import Layer
from derivations.language.names import FREE, LayerError

p, q, r = FREE[:3]
i0 = sp.Symbol("i0", integer=True, nonnegative=True)
n, D, H, T = (sp.Symbol(x, integer=True, positive=True) for x in ("n", "D", "H", "T"))


def _claim(inputs: dict, forward: str, key: str, text: str, axes=("n", "D", "H")) -> sp.Expr:
    layer = Layer("t", axes, inputs, (forward,), claims={key: text})
    return normal_dummies(layer.claims[key])


def _base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name)


x, W, g, dout, rinv = (_base(k) for k in ("x", "W", "g", "dout", "rinv"))


def _mismatch(inputs: dict, forward: str, key: str, text: str, axes=("n", "D", "H")):
    layer = Layer("t", axes, inputs, (forward,), claims={key: text})
    assert key not in layer.claims
    return layer.mismatches[key]


def test_rule_1_broadcasting_is_positional():
    """g (D,) against dout (n, D): numpy right-aligns, D with D."""
    got = _claim(
        {"x": ("n", "D"), "g": ("D",)}, "out[i, j] = g[j] * x[i, j]", "x", "g * dout", ("n", "D")
    )
    assert got == g[q] * dout[p, q]


def test_rule_1_a_reduced_row_statistic_needs_its_new_axis():
    """mean(..., axis=1) of (n, D) is (n,): numpy lines it up with D, not n; the claim is
    refuted with the subscript numpy needs, and written with it, it is read as meant."""
    forward, inputs = "out[i, j] = x[i, j]", {"x": ("n", "D")}
    mismatch = _mismatch(inputs, forward, "x", "dout - mean(dout, axis=1)", ("n", "D"))
    assert "numpy lines up the last axes, D against n, so it runs only where D = n" in (
        mismatch.reason
    )
    assert "as numpy would write it: mean(dout, axis=1)[:, None]" in mismatch.reason
    assert mismatch.sizes[n] != mismatch.sizes[D] and min(mismatch.sizes.values()) >= 2
    expected = dout[p, q] - sp.Sum(dout[p, i0], (i0, 0, D - 1)) / D
    for text in ("dout - mean(dout, axis=1)[:, None]", "dout - mean(dout, axis=1, keepdims=True)"):
        assert _claim(inputs, forward, "x", text, ("n", "D")) == expected
    assert _claim(inputs, forward, "x", "dout - mean(dout, axis=1)[..., None]", ("n", "D")) == (
        expected
    )


def test_rule_2_new_axes_and_other_subscripts():
    forward, inputs = "out[i, j] = x[i, j]", {"x": ("n", "D"), "g": ("D",)}
    got = _claim(inputs, forward, "x", "dout * g[None, :]", ("n", "D"))
    assert got == dout[p, q] * g[q]
    for text in ("dout[0]", "dout[:, 1:]", "dout[..., ..., None]", "dout[:, :, :]"):
        with pytest.raises(LayerError) as err:
            _claim(inputs, forward, "x", text, ("n", "D"))
        assert "\n" not in str(err.value)


def test_rule_2_keepdims_broadcasts_positionally():
    got = _claim(
        {"x": ("n", "D")},
        "out[i, j] = x[i, j]",
        "x",
        "dout - sum(dout, axis=0, keepdims=True)",
        ("n", "D"),
    )
    assert got == dout[p, q] - sp.Sum(dout[i0, q], (i0, 0, n - 1))


def test_rule_2_a_repeated_axis_is_positional():
    """(T,) against (T, T) is numpy's: the vector runs along the last axis."""
    inputs = {"a": ("T", "T"), "v": ("T",)}
    forward = "out[i, j] = a[i, j] * v[j]"
    a, v = _base("a"), _base("v")
    got = _claim(inputs, forward, "a", "dout * a", ("T",))
    assert got == dout[p, q] * a[p, q]  # same rank: position by position
    assert _claim(inputs, forward, "a", "dout * v", ("T",)) == dout[p, q] * v[q]
    assert _claim(inputs, forward, "a", "dout * v[:, None]", ("T",)) == dout[p, q] * v[p]
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


def test_rule_5_the_value_must_have_the_inputs_shape_in_order():
    """Another shape, or the input's axes transposed, refutes the claim (never an error, never
    lined up by name)."""
    inputs = {"x": ("n", "D"), "W": ("D", "H")}
    forward = "out[i, k] = sum(x[i, j] * W[j, k], j)"
    broadcast = _mismatch(inputs, forward, "W", "x * dout")  # (n, D) x (n, H)
    assert "runs only where D = H" in broadcast.reason
    transposed = _mismatch(inputs, forward, "W", "dout.T @ x")  # (H, D)
    assert transposed.reason.startswith("the claim is (H, D), W is (D, H): as code this is W's")
    assert "transposed; as numpy would write it: (dout.T @ x).T" in transposed.reason
    assert transposed.sizes[D] != transposed.sizes[H]
    kept = _mismatch(inputs, forward, "W", "sum(x, axis=0)")  # (D,) for (D, H)
    assert "the claim is (D,), W is (D, H)" in kept.reason
    contracted = _mismatch(inputs, forward, "x", "dout @ W")  # (n, H) @ (D, H)
    assert "contracts H with D, which numpy runs only where H = D" in contracted.reason


def test_a_constant_claim_broadcasts_to_the_input():
    got = _claim({"x": ("n", "D")}, "out = sum(sum(x[i, j], j), i)", "x", "1", ("n", "D"))
    assert got == 1


def test_a_claim_reads_the_same_whatever_was_read_before():
    """A claim's summation dummies are named by their place in the claim alone: the printed
    form (what docs/derivations.md shows) does not depend on how many claims the process read
    before (a process-wide counter made the generated docs depend on the test order)."""
    inputs, forward = {"x": ("n", "D"), "W": ("D", "H")}, "out[i, k] = sum(x[i, j] * W[j, k], j)"

    def printed() -> str:
        layer = Layer("t", ("n", "D", "H"), inputs, (forward,), claims={"x": "dout @ W.T"})
        return str(layer.claims["x"])

    first = printed()
    for _ in range(3):
        Layer("u", ("n", "D", "H"), inputs, (forward,), claims={"W": "x.T @ dout"})
    assert printed() == first
