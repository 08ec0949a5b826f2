"""The statement language's one core (``derivations/language/evaluator.py``): every reading of a
statement is a subclass of one walker, which sends each node to ``_eval_<NodeClass>`` and each
call to ``_call_<name>`` or to the element-wise functions, checking their arity once."""

from __future__ import annotations

import ast

import pytest

from derivations.language.claims import ClaimEvaluator
from derivations.language.evaluator import Evaluator, ExprEvaluator
from derivations.language.interpret import ForwardInterpreter
from derivations.language.layer import Layer, SizeReader
from derivations.language.names import LayerError
from derivations.language.notation import IndexEvaluator
from derivations.language.positions import IndexReader
from derivations.printing.claimcode import ClaimCode


def test_every_reading_is_the_one_walker():
    for reading in (IndexEvaluator, ClaimEvaluator, ClaimCode, ForwardInterpreter):
        assert issubclass(reading, ExprEvaluator), reading
    for reading in (IndexReader, SizeReader):
        assert issubclass(reading, Evaluator) and not issubclass(reading, ExprEvaluator)


class _Text(ExprEvaluator):
    """A toy reading: a value is its text in prefix form; ``twice`` is a function of its own."""

    def constant(self, node):
        return str(node.value)

    def name(self, key):
        return key

    def negate(self, value):
        return f"(neg {value})"

    def binary(self, node, left, right):
        return f"({type(node.op).__name__} {left} {right})"

    def apply(self, func, args, node):
        return f"({func} {' '.join(args)})"

    def _call_twice(self, node):
        return f"(twice {self.eval(node.args[0])})"


def test_nodes_and_calls_are_dispatched_by_name():
    reading = _Text("toy")
    assert reading.run("twice(a + 1) * exp(b)") == "(Mult (twice (Add a 1)) (exp b))"
    assert reading.run("-(+a)") == "(neg a)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("exp(a, b)", "toy: exp() takes one argument"),
        ("maximum(a)", "toy: maximum() takes two arguments"),
        ("where(a, b, c)", "toy: where: the condition 'a' is not a comparison"),
        ("nosuch(a)", "toy: unknown function 'nosuch'"),
        ("a.b", "toy: unsupported syntax 'a.b'"),
        ("a < b < c", "toy: 'a < b < c': one comparison of >, >=, <, <="),
        ("a lambda", "toy: not an expression: invalid syntax ('lambda' is a Python keyword"),
    ],
)
def test_what_a_reading_does_not_read_is_one_line_naming_it(text, message):
    with pytest.raises(LayerError) as caught:
        _Text("toy").run(text)
    assert str(caught.value).startswith(message)


def test_a_construct_unknown_to_every_reading_is_refused_in_each():
    """The same node is refused by the forward's reading and by the claim's, in the same words."""
    with pytest.raises(LayerError, match="unsupported syntax 'x\\[i\\].real'"):
        Layer("t", ("n",), {"x": ("n",)}, ("out[i] = x[i].real",))
    with pytest.raises(LayerError, match="unsupported syntax 'x.real'"):
        Layer("t", ("n",), {"x": ("n",)}, ("out[i] = x[i]",), claims={"x": "x.real"})


def test_the_walk_covers_every_node_class_a_reading_names():
    """Each ``_eval_<Name>`` of every reading names a real node class of Python's ast (a typo
    would silently never be called)."""
    readings = (IndexEvaluator, ClaimEvaluator, ClaimCode, ForwardInterpreter, IndexReader)
    for reading in (*readings, SizeReader, Evaluator, ExprEvaluator):
        for attr in dir(reading):
            if attr.startswith("_eval_"):
                assert isinstance(getattr(ast, attr[len("_eval_") :], None), type), attr
