"""An independent check at concrete batch sizes n = 2..5, without the collapse helper.

Each layer's objective is written out in full at a concrete n (``Sum.doit()`` on fixed bounds:
a matrix of symbols), differentiated exactly with respect to every element of the first and
last rows (an exact vector-Jacobian product), and compared at 50 digits, at random rational
inputs, with the closed form the kernel prints (its named intermediates replaced by their
definitions).
"""

from __future__ import annotations

import random
from typing import NamedTuple

import sympy as sp

from derivations.indices import V, n
from derivations.spec import Gradient, Layer, rewrite

DIGITS = 50
TOLERANCE = sp.Float("1e-40", DIGITS)  # 50-digit arithmetic; exact agreement leaves ~1e-48
SIZES = (2, 3, 4, 5)


class BruteForce(NamedTuple):
    """The largest relative difference over the checked elements of one gradient at one n."""

    layer: str
    gradient: str
    n: int
    elements: int
    max_error: sp.Float

    @property
    def ok(self) -> bool:
        """Agreement to 40 digits."""
        return bool(self.max_error <= TOLERANCE)


def _integer_arrays(expr: sp.Expr) -> set[sp.Indexed]:
    """Elements used as indices (``y[i]``, ``xb[i, t]``): these take integer values."""
    found = set()
    for delta in expr.atoms(sp.KroneckerDelta):
        found |= {arg for arg in delta.args if isinstance(arg, sp.Indexed)}
    for element in expr.atoms(sp.Indexed):
        for index in element.indices:
            found |= index.atoms(sp.Indexed)
    return found


def _values(expr: sp.Expr, classes: int, rng: random.Random) -> dict[sp.Expr, sp.Expr]:
    """Random integers in ``[0, classes)`` for the elements of the index arrays (the labels);
    the other inputs get their values from :func:`_rationals`."""
    values: dict[sp.Expr, sp.Expr] = {}
    for element in sorted(_integer_arrays(expr), key=sp.default_sort_key):
        values[element] = sp.Integer(rng.randrange(classes))
    return values


def _rationals(expr: sp.Expr, rng: random.Random) -> dict[sp.Expr, sp.Expr]:
    elements = expr.atoms(sp.Indexed)
    labels = {element.base.label for element in elements}
    atoms = elements | (expr.atoms(sp.Symbol) - labels)  # epsilon; never an array's label
    # random rationals, held as 50-digit floats: sympy then evaluates as it substitutes
    return {
        atom: sp.Float(sp.Rational(rng.randint(-200, 200), rng.randint(50, 100)), DIGITS)
        for atom in sorted(atoms, key=sp.default_sort_key)
        if not atom.is_Integer
    }


def written_out(expr: sp.Expr) -> sp.Expr:
    """Every sum with concrete bounds written out term by term (a plain loop, no deltas
    collapsed: ``Sum.doit()`` gives the same, slowly)."""

    def write_out(total: sp.Sum) -> sp.Expr:
        terms = [total.function]
        for dummy, low, high in total.limits:
            terms = [
                term.xreplace({dummy: sp.Integer(v)})
                for term in terms
                for v in range(int(low), int(high) + 1)
            ]
        return sp.Add(*terms)

    return expr.replace(lambda x: isinstance(x, sp.Sum), write_out)


class _Point(NamedTuple):
    """One concrete batch size: the objective written out and the inputs' random values."""

    sizes: dict
    objective: sp.Expr  # with the index arrays already replaced by integers
    indices: dict  # index-array element -> integer
    values: dict  # every other input element -> rational
    named: dict  # cache: a named intermediate's element -> its value from its definition


def _point(layer: Layer, batch: int) -> _Point:
    sizes = {n: batch, **layer.sizes}
    rng = random.Random(f"{layer.name}/{batch}")
    objective = written_out(layer.objective.xreplace(sizes))
    indices = _values(objective, sizes.get(V, 3), rng)
    objective = objective.xreplace(indices)
    values = _rationals(objective, rng)
    return _Point(sizes, objective, indices, values, {})


def _closed_at(layer: Layer, gradient: Gradient, element: sp.Indexed, point: _Point) -> sp.Float:
    """The closed form at one concrete element, its named intermediates evaluated from their
    definitions in the layer's raw inputs."""
    at = dict(zip(gradient.wrt.indices, element.indices, strict=True))
    closed = written_out(rewrite(gradient.closed, layer.unfold).xreplace({**point.sizes, **at}))
    closed = closed.xreplace(point.indices)
    for x in closed.atoms(sp.Indexed):
        if x.base in layer.definitions and x not in point.named:
            raw = layer.definitions[x.base](*x.indices).xreplace(point.sizes)
            point.named[x] = written_out(raw).xreplace(point.indices).xreplace(point.values)
    closed = closed.xreplace(point.named)
    return closed.xreplace(point.values).evalf(DIGITS)


def edge_rows(elements) -> list[sp.Indexed]:
    """The elements of the first and last row (first index), sorted: each depends on every
    other row through the batch sums, and half the rows keep the check fast."""
    elements = sorted(elements, key=sp.default_sort_key)
    rows = {int(element.indices[0]) for element in elements}
    return [x for x in elements if int(x.indices[0]) in (min(rows), max(rows))]


def check_gradient(layer: Layer, gradient: Gradient, point: _Point) -> BruteForce:
    """Brute-force one gradient of ``layer`` at one concrete batch size: every element of its
    first and last rows."""
    elements = edge_rows(
        x for x in point.objective.atoms(sp.Indexed) if x.base == gradient.wrt.base
    )
    # every other input takes its value first, and the differentiated elements become plain
    # symbols: a smaller expression, and sympy differentiates symbols faster than Indexed
    others = {atom: value for atom, value in point.values.items() if atom not in elements}
    symbols = {
        element: sp.Symbol(f"{element.base}_{'_'.join(map(str, element.indices))}")
        for element in elements
    }
    objective = point.objective.xreplace(others).xreplace(symbols)
    values = {symbols[element]: point.values[element] for element in elements}
    worst = sp.Float(0, DIGITS)
    for element in elements:
        exact = sp.diff(objective, symbols[element]).xreplace(values).evalf(DIGITS)
        closed = _closed_at(layer, gradient, element, point)
        worst = max(worst, abs(exact - closed) / max(1, abs(exact)))
    return BruteForce(layer.name, gradient.name, point.sizes[n], len(elements), worst)


def check_layer(layer: Layer, sizes: tuple[int, ...] = SIZES) -> tuple[BruteForce, ...]:
    """Every gradient of ``layer`` at every batch size in ``sizes``."""
    points = [_point(layer, batch) for batch in sizes]
    return tuple(
        check_gradient(layer, gradient, point) for gradient in layer.gradients for point in points
    )
