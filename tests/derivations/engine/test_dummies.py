"""The derived forms of nested sums are right at every index: a line that adds an input
carrying the line's own indices to a double sum (``Y[i, l] = sum(A[i, j] * X[j, k] *
B[k, l], j, k) + C[i, l]``) printed diagonals like ``B[i1, i1]`` (a dummy renamed into a name an
inner sum binds) and its kernel missed the bound. Each form, the derived one and the one in the
forward's names, is written out at concrete sizes and evaluated exactly at every element against
the derivative of the forward summed out by ``Sum.doit()`` (not the engine's route)."""

from __future__ import annotations

import itertools
import random

import pytest
import sympy as sp

from derivations.engine.derive import check, normal_dummies, objective, raw
from derivations.engine.exact import written_out
from derivations.language.layer import Layer
from derivations.outputs.kernel import in_names, namings
from derivations.outputs.layer_report import run_layer

NESTED = "Y[i, l] = sum(A[i, j] * X[j, k] * B[k, l], j, k) + C[i, l]"
INPUTS = {"A": ("n", "D"), "X": ("D", "D"), "B": ("D", "D"), "C": ("n", "D")}
LAYERS = {
    "tanh after": (NESTED, "out[i, l] = tanh(Y[i, l])"),
    "summed after": (NESTED, "out[i] = sum(Y[i, l] * Y[i, l], l)"),
}
SIZES = {"n": 2, "D": 3}  # unequal, so a transposed or diagonal read differs


def _layer(lines: tuple[str, ...]) -> Layer:
    return Layer("nested", ("n", "D"), INPUTS, lines)


def _values(layer: Layer, sizes: dict) -> dict:
    rng = random.Random(7)
    arrays = {**layer.inputs}
    if not layer.is_loss:
        arrays[str(layer.upstream)] = layer.output.shape
    return {
        sp.IndexedBase(key)[at]: sp.Rational(rng.randint(-4, 4), rng.randint(2, 5))
        for key, shape in arrays.items()
        for at in itertools.product(*(range(sizes[str(a)]) for a in shape))
    }


def _same(a: sp.Expr, b: sp.Expr) -> bool:
    """Equal exactly (rationals), or within 1e-40 (1 + |a|) at 60 digits (tanh of rationals;
    a wrong index is off by far more)."""
    if a.is_Rational and b.is_Rational:
        return a == b
    x, y = a.evalf(60), b.evalf(60)
    return bool(abs(x - y) <= sp.Float("1e-40", 60) * (1 + abs(x)))


@pytest.mark.parametrize("name", LAYERS)
def test_derived_forms_are_exact_at_every_index(name):
    layer = _layer(LAYERS[name])
    sizes = {axis: SIZES[str(axis)] for axis in layer.axes}
    values = _values(layer, SIZES)
    total = objective(layer).xreplace(sizes).doit()
    variable = sp.Symbol("variable")
    for key, shape in layer.inputs.items():
        derived = check(layer, key).derived
        free = layer.free_sizes(shape)
        printed = in_names(derived, layer, namings(layer, free))
        for at in itertools.product(*(range(SIZES[str(a)]) for a in shape)):
            element = sp.IndexedBase(key)[at]
            others = {k: v for k, v in values.items() if k != element}
            alone = total.xreplace({element: variable}).xreplace(others)
            truth = sp.diff(alone, variable).xreplace({variable: values[element]})
            point = {**sizes, **dict(zip(free, at, strict=True))}
            for form in (derived, raw(printed, layer)):
                got = written_out(form.xreplace(point)).xreplace(values)
                assert _same(got, truth), (name, key, at, form)


def test_a_second_renaming_pass_captures_no_inner_dummy():
    """normal_dummies over a form whose inner sum already binds ``i0``: the outer dummy
    becomes ``i0`` without capturing it (the inner one is renamed ``i1``)."""
    n = sp.Symbol("n", integer=True, positive=True)
    i0 = sp.Symbol("i0", integer=True, nonnegative=True)
    a = sp.Dummy("a", integer=True, nonnegative=True)
    B = sp.IndexedBase("B")
    expr = sp.Sum(B[a, a] * 0 + sp.Sum(B[a, i0], (i0, 0, n - 1)), (a, 0, n - 1))
    renamed = normal_dummies(expr)
    values = {B[r, c]: sp.Integer(10 * r + c) for r in range(3) for c in range(3)}
    at_3 = [form.xreplace({n: 3}).doit().xreplace(values) for form in (renamed, expr)]
    assert at_3[0] == at_3[1]
    assert not any(x.indices[0] == x.indices[1] for x in renamed.atoms(sp.Indexed))


def _unread_assignments(text: str) -> list[str]:
    """Each ``function: name`` assigned in a function body and never read after it."""
    import ast

    found = []
    for function in ast.parse(text).body:
        if not isinstance(function, ast.FunctionDef):
            continue
        for k, statement in enumerate(function.body):
            if not isinstance(statement, ast.Assign):
                continue
            rest = [n for s in function.body[k + 1 :] for n in ast.walk(s)]
            later = {n.id for n in rest if isinstance(n, ast.Name)}
            for target in statement.targets:
                if target.id not in later:
                    found.append(f"{function.name}: {target.id}")
    return found


def test_a_written_kernel_holds_no_unused_line_or_size(tmp_path):
    """The backward recomputed the forward's output (``out = ...``) and bound every size
    (``D = x.shape[1]``) whether read or not; the nested layer's forward line ``Y`` is read
    by its gradients and stays."""
    report = run_layer(_layer(LAYERS["tanh after"]), tmp_path / "k.py", "test")
    text = (tmp_path / "k.py").read_text()
    assert report.ok and _unread_assignments(text) == [], text  # verified: no diagonal read
    assert "i1, i1" not in report.text and "i0, i0" not in report.text
    assert "    Y = " in text.split("def nested_backward")[1]
    assert "    out = " not in text.split("def nested_backward")[1]
