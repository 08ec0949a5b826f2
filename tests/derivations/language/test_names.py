"""Any names: natural array names (q, k, v, m, s), index names declared by use in each line
(any identifiers, any number), names compared as Python reads them (NFKC), and the one-line
errors for a name used two ways in a line or a size used as an index."""

from __future__ import annotations

import pytest

from derivations.engine.derive import check
from derivations.language.layer import Layer
from derivations.language.names import LayerError
from derivations.outputs.layer_report import run_layer


def _attention(claims: dict) -> Layer:
    """Unscaled, unnormalised attention with the names people use: q, k, v, s."""
    return Layer(
        "att",
        ("T", "hs"),
        {"q": ("T", "hs"), "k": ("T", "hs"), "v": ("T", "hs")},
        (
            "s[t1, t2] = sum(q[t1, c] * k[t2, c], c)",
            "o[t1, c] = sum(s[t1, t2] * v[t2, c], t2)",
        ),
        claims=claims,
    )


def test_q_k_v_s_are_names_and_the_claims_are_proved():
    layer = _attention({"q": "dout @ v.T @ k", "k": "(dout @ v.T).T @ q", "v": "s.T @ dout"})
    for key in ("q", "k", "v"):
        assert check(layer, key).proof.ok, key


def test_keys_transposed_is_refuted():
    layer = _attention({"k": "(dout @ v.T) @ q"})  # (T, T) @ (T, hs): right shape, wrong
    verdict = check(layer, "k")
    assert not verdict.proof.ok and verdict.counterexample is not None


def test_m_for_a_mean_and_internal_looking_index_names(tmp_path):
    """``m`` for a mean; index names p, q (the engine's own free indices) and an intermediate
    called i0 (its dummies' name): proved, refuted and the kernel verified as for any names."""
    layer = Layer(
        "pq",
        ("n", "D"),
        {"x": ("n", "D"), "w": ("D",)},
        (
            "m[p] = mean(x[p, q], q)",
            "i0[p] = sum(x[p, q] * w[q], q)",
            "out[q, p] = x[q, p] * i0[q] + m[q]",
        ),
        claims={"w": "sum(x * sum(dout * x, axis=1)[:, None], axis=0)"},
    )
    assert check(layer, "w").proof.ok
    wrong = layer.with_claims({"w": "sum(x * sum(dout, axis=1)[:, None], axis=0)"})
    assert check(wrong, "w").counterexample is not None
    report = run_layer(layer, tmp_path / "k.py", "test")
    assert report.ok, report.text


def test_six_index_names_in_one_line():
    axes = ("a", "b", "c", "d", "e", "f")
    layer = Layer(
        "six",
        axes,
        {"x": axes, "g": ("f",)},
        ("out[i1, i2, i3, i4, i5, i6] = x[i1, i2, i3, i4, i5, i6] * g[i6]",),
        claims={"x": "dout * g", "g": "sum(dout * x, axis=(0, 1, 2, 3, 4))"},
    )
    assert check(layer, "x").proof.ok and check(layer, "g").proof.ok
    wrong = layer.with_claims({"g": "sum(dout * x, axis=(0, 1, 2, 3))"})  # (e, f), not (f,)
    assert check(wrong, "g").mismatch is not None


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        (("out[i, j] = x[i, K]",), "'K' in x[i, K] is a size (an axis), not an index"),
        (("out[i, j] = x[i, eps]",), "'eps' in x[i, eps] is a constant, not an index"),
        (("out[i, x] = x[i, x]",), "'x' is used both as an array (x[i, x]) and as an index"),
        (("out[i, j] = x[i, j] * j",), "'j' is used both as a value (j) and as an index"),
        (("out[i, j] = x[i, j] * g[j]", "h[g, j] = out[g, j] * g[j]"), "'g' is used both as"),
        (("out[i, sum] = x[i, sum]",), "'sum' in out[i, sum] is a name of the statement"),
        (("out[i, i] = x[i, i]",), "an index repeats on the left side"),
    ],
)
def test_a_name_used_two_ways_in_a_line_is_one_line(forward, message):
    with pytest.raises(LayerError) as err:
        Layer(
            "t",
            ("n", "K"),
            {"x": ("n", "K"), "g": ("K",)},
            forward,
            constants={"eps": "1/10"},
        )
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_index_may_share_a_name_with_an_array_of_another_line():
    """``k`` indexes the first line and is the keys array of none: allowed (not in one line)."""
    layer = Layer(
        "t",
        ("n", "D"),
        {"x": ("n", "D"), "k": ("D",)},
        ("h[i, j] = x[i, j] * k[j]", "out[i] = sum(h[i, k], k)"),
        claims={"k": "sum(dout[:, None] * x, axis=0)"},
    )
    assert check(layer, "k").proof.ok


def test_an_index_named_like_a_scalar_line_of_another_line_is_only_an_index():
    """``s`` is a scalar line and, in the next line, a summation index: the engine never
    mistakes the index for the line (a wrong claim is refuted, the right one proved)."""
    layer = Layer(
        "t",
        ("n",),
        {"x": ("n",), "w": ("n",)},
        ("s = sum(x[i], i)", "u = sum(x[s] * w[s], s)", "out = u * s"),
        claims={"w": "x * s", "x": "w * s + u"},
    )
    assert check(layer, "w").proof.ok and check(layer, "x").proof.ok
    assert check(layer.with_claims({"w": "x * u"}), "w").counterexample is not None


def test_the_upstream_is_named_and_an_unknown_d_name_says_so():
    with pytest.raises(LayerError) as err:
        Layer("t", ("n",), {"x": ("n",)}, ("y[i] = 2 * x[i]",), claims={"x": "2 * dy"})
    assert "unknown symbol 'dy': the upstream gradient (d objective / d y) is called 'dout'" in (
        str(err.value)
    )
    layer = Layer(
        "t", ("n",), {"x": ("n",)}, ("y[i] = 2 * x[i]",), upstream="dy", claims={"x": "2 * dy"}
    )
    assert check(layer, "x").proof.ok


# ---------------------------------------------------------------- NFKC (issue 25)
def test_names_that_fold_together_are_one_error():
    """Python reads full-width ``ｘ`` as ``x``: two inputs ``x`` and ``ｘ`` would be one array to
    the parser and two to the statement. One error, never a claim proved for the wrong one."""
    with pytest.raises(LayerError) as err:
        Layer("t", ("n",), {"x": ("n",), "ｘ": ("n",)}, ("o[i] = x[i] * ｘ[i]",))
    assert "input name 'ｘ' is already the name of input x (Python reads 'ｘ' as 'x')" in str(
        err.value
    )
    for changes in (
        {"axes": ("n", "ｎ")},
        {"constants": {"ｘ": "2"}},
        {"labels": {"ｘ": (("n",), "n")}},
        {"upstream": "ｘ"},
    ):
        statement = {"name": "t", "axes": ("n",), "inputs": {"x": ("n",)}}
        statement.update(forward=("o[i] = x[i]",), **changes)
        with pytest.raises(LayerError, match="already the name of"):
            Layer(**statement)
    with pytest.raises(LayerError, match="claimed twice"):
        Layer("t", ("n",), {"x": ("n",)}, ("o[i] = x[i]",), claims={"x": "dout", "ｘ": "0"})


def test_a_folded_name_is_the_same_name_everywhere():
    """An input spelled ``ｘ`` with an axis ``ｎ``: the forward and the claim, parsed by Python,
    say ``x`` and ``n``; the statement stores the folded names, so they meet."""
    layer = Layer("t", ("ｎ",), {"ｘ": ("ｎ",)}, ("o[i] = 3 * ｘ[i]",), claims={"ｘ": "3 * dout"})
    assert list(layer.inputs) == ["x"] and check(layer, "x").proof.ok
    wrong = layer.with_claims({"ｘ": "2 * dout"})
    assert check(wrong, "x").counterexample is not None


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (
            {"inputs": {"lambda": ("n",)}},
            "input name 'lambda' is reserved: 'lambda' is a Python keyword",
        ),
        ({"forward": ("class[i] = x[i]",)}, "'class' is a Python keyword, not a name"),
        ({"forward": ("out[i] = x[i] * lambda",)}, "'lambda' is a Python keyword, not a name"),
        ({"inputs": {"jnp": ("n",)}}, "'jnp' is reserved: a name the kernel or the statement"),
        ({"inputs": {"_x": ("n",)}}, "'_x' is reserved: a name starting with '_'"),
    ],
)
def test_a_reserved_name_says_why_it_is_reserved(spec, why):
    """A Python keyword is named as one (#25); the language's own names say so, and never
    claim to be keywords."""
    statement = {"inputs": {"x": ("n",)}, "forward": ("out[i] = x[i]",), **spec}
    with pytest.raises(LayerError) as caught:
        Layer("t", ("n",), statement["inputs"], statement["forward"])
    assert why in str(caught.value)
    assert ("keyword" in str(caught.value)) == ("keyword" in why)
