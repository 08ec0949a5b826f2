"""``flat = reshape(x, (B, T2, 2*C))``: numpy's row-major reshape as a forward line
(:mod:`derivations.language.reshape`), for part 5's FlattenConsecutive.

The rewritten line names, at every element and concrete size, the element numpy's reshape
puts there; the example's claims are CHECKED in their stated range and the wrong grouping is
REFUTED; a reshape that changes the number of elements, or is written with indices or of an
unknown array, is a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derivations.engine import derive
from derivations.language.layer import Layer, load_layer
from derivations.language.names import LayerError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _reshape_layer(forward: str, sizes=None, inputs=None) -> Layer:
    return Layer(
        name="r",
        axes=("A", "B", "C"),
        sizes=sizes or {},
        inputs=inputs or {"x": ("A", "B", "C")},
        forward=(forward, "out[i, j] = sum(flat[i, j, k], k)"),
    )


@pytest.mark.parametrize(
    ("forward", "new_shape"),
    [
        ("flat = reshape(x, (A, C, B))", lambda a, b, c: (a, c, b)),  # a reshape, not a transpose
        ("flat = reshape(x, (B, A, C))", lambda a, b, c: (b, a, c)),  # nothing leading kept
        ("flat = reshape(x, (C, A, B))", lambda a, b, c: (c, a, b)),
    ],
)
def test_the_line_is_numpys_reshape_at_every_element(forward, new_shape):
    layer = _reshape_layer(forward)
    line = layer.names["flat"]
    for a, b, c in [(1, 1, 1), (2, 3, 2), (3, 2, 4)]:
        at = dict(zip(layer.axes, (a, b, c), strict=True))
        x = np.arange(a * b * c).reshape(a, b, c)
        view = x.reshape(new_shape(a, b, c))
        for index in np.ndindex(view.shape):
            element = line.rhs.xreplace({**at, **dict(zip(line.indices, index, strict=True))})
            (read,) = element.atoms(sp.Indexed)
            assert element == read  # in range: every InRange factor is 1
            assert x[tuple(int(i) for i in read.indices)] == view[index]


def test_flatten_consecutive_as_a_reshape_is_checked_and_its_wrong_grouping_refuted():
    right = load_layer(EXAMPLES / "flatten_reshape.py")
    for key in right.claim_text:
        verdict = derive.check(right, key)
        assert verdict.checked == "B <= 2, T2 <= 2, C <= 3, H <= 2", (key, verdict.searched)
    wrong = load_layer(EXAMPLES / "flatten_reshape_wrong.py")
    for key in wrong.claim_text:
        verdict = derive.check(wrong, key)
        assert not verdict.proof.ok and not verdict.checked
        assert verdict.counterexample is not None


def test_the_reshape_reads_as_the_hand_written_flatten():
    """The hand-written line's claims hold of the reshape too, and the reshape's line agrees
    with the hand-written one at every element (both are torch's view)."""
    reshaped = load_layer(EXAMPLES / "flatten_reshape.py")
    by_hand = load_layer(EXAMPLES / "flatten_consecutive.py")
    assert reshaped.claim_text == by_hand.claim_text
    ours, theirs = reshaped.names["flat"], by_hand.names["flat"]
    for b_size, t2, c_size in [(1, 1, 1), (2, 2, 3), (1, 3, 2)]:
        at = dict(zip(reshaped.axes, (b_size, t2, c_size, 1), strict=True))
        for index in np.ndindex(b_size, t2, 2 * c_size):
            one = ours.rhs.xreplace({**at, **dict(zip(ours.indices, index, strict=True))})
            two = theirs.rhs.xreplace({**at, **dict(zip(theirs.indices, index, strict=True))})
            assert one == two


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("flat = reshape(x, (A, B, 2*C))", "holds 2*A*B*C elements"),
        ("flat[i, j, k] = reshape(x, (A, C, B))", "a reshape's target has no indices"),
        ("flat = reshape(y, (A, C, B))", "'y' is not an array of the layer"),
        ("flat = reshape(x, A)", "is not a tuple"),
        ("flat = reshape(x)", "takes an array and a shape tuple"),
        ("flat = reshape(x, (A, C, Q))", "axis 'Q' does not exist"),
    ],
)
def test_a_wrong_reshape_is_one_line(forward, message):
    with pytest.raises(LayerError, match="forward line 1") as caught:
        _reshape_layer(forward)
    assert message in str(caught.value) and "\n" not in str(caught.value)
