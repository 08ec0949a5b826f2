"""The statement language's functions with a kink, defined so their derivatives are jax's.

sympy's own ``Abs`` differentiates through complex parts and ``Max``'s derivative is
``Heaviside`` (1/2 at a tie, right for ``jnp.maximum`` but not for ``jax.nn.relu``), so each
kinked function is a small ``sympy.Function`` whose derivative is a step function that jax's
convention fixes at the kink:

- ``relu(x)``: derivative ``ReluStep(x)``, 0 at x = 0 (``jax.grad(jax.nn.relu)(0.) == 0``);
- ``absolute(x)``: derivative ``AbsStep(x)``, +1 at x = 0 (``jax.grad(jnp.abs)(0.) == 1``);
- ``maximum(a, b)``: derivative ``TieStep(a - b)`` in a, ``TieStep(b - a)`` in b, 1/2 each at a
  tie (``jnp.maximum``);
- ``minimum(a, b)`` likewise; ``sign(x)``: numpy's (0 at 0), derivative 0; ``clip(x, lo, hi)``
  (jnp.clip: minimum(maximum(x, lo), hi)); ``where(cond, a, b)``: the branch taken;
- comparisons are 0/1 steps: ``(x > 0)`` is ``ReluStep(x)``, ``(x >= 0)`` ``GeStep(x)``
  (:func:`comparison`), in a forward or a claim.

Each prints (``sstr``) as a claim would write it: the steps as comparisons, ``AbsStep(z)`` as
``where(z >= 0, 1, -1)``, ``TieStep(z)`` as ``((z > 0) + (z >= 0))/2``; never by its class name.

Proofs hold where the functions are differentiable (the steps are opaque symbols to
``simplify``); the counterexample search draws no point where a kink's argument is 0
(:data:`KINKS`).
"""

from __future__ import annotations

import sympy as sp


class _Step(sp.Function):
    """A piecewise-constant function of one argument: derivative 0 (away from its jump)."""

    nargs = 1
    at_zero: sp.Expr = sp.S.Half
    below: sp.Expr = sp.S.Zero
    above: sp.Expr = sp.S.One

    @classmethod
    def eval(cls, arg):
        if arg.is_Number:
            return cls.above if arg > 0 else cls.below if arg < 0 else cls.at_zero
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _eval_evalf(self, prec):
        value = self.args[0].evalf(prec)
        return self.func(value) if value.is_Number else None


class ReluStep(_Step):
    """d relu(x)/dx, and a claim's ``(x > 0)``: 1 above 0, 0 at and below 0."""

    at_zero = sp.S.Zero

    def _sympystr(self, printer) -> str:
        return f"({printer._print(self.args[0])} > 0)"


class AbsStep(_Step):
    """d |x|/dx: +1 at and above 0, -1 below."""

    at_zero = sp.S.One
    below = sp.S.NegativeOne

    def _sympystr(self, printer) -> str:
        return f"where({printer._print(self.args[0])} >= 0, 1, -1)"


class GeStep(_Step):
    """A claim's ``(x >= 0)``: 1 at and above 0, 0 below."""

    at_zero = sp.S.One

    def _sympystr(self, printer) -> str:
        return f"({printer._print(self.args[0])} >= 0)"


class TieStep(_Step):
    """d maximum(a, b)/da as a function of a - b: 1 above 0, 1/2 at a tie, 0 below."""

    def _sympystr(self, printer) -> str:
        arg = printer._print(self.args[0])
        return f"((({arg} > 0) + ({arg} >= 0))/2)"


class relu(sp.Function):  # noqa: N801 - the statement's name for it
    """max(x, 0) with jax's derivative at 0."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_Number:
            return arg if arg > 0 else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return ReluStep(self.args[0])


class absolute(sp.Function):  # noqa: N801
    """|x| with jax's derivative at 0."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_Number:
            return abs(arg)
        return None

    def fdiff(self, argindex=1):
        return AbsStep(self.args[0])

    def _sympystr(self, printer) -> str:
        return f"abs({printer._print(self.args[0])})"


class maximum(sp.Function):  # noqa: N801
    """The larger of a and b (element-wise), ties splitting the derivative 1/2 each."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a >= b else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return TieStep(a - b) if argindex == 1 else TieStep(b - a)


class minimum(sp.Function):  # noqa: N801
    """The smaller of a and b (element-wise), ties splitting the derivative 1/2 each."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a <= b else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return TieStep(b - a) if argindex == 1 else TieStep(a - b)


class sign(sp.Function):  # noqa: N801
    """-1, 0 or +1 (numpy's, 0 at 0); derivative 0, as jax's."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg.is_Number:
            return sp.sign(arg)
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero


class where(sp.Function):  # noqa: N801
    """``where(cond, a, b)``: a where the 0/1 step ``cond`` is 1, else b; the gradient flows to
    the branch taken (jax's), never through the condition."""

    nargs = 3

    @classmethod
    def eval(cls, cond, a, b):
        if cond.is_Number:
            return a if cond == 1 else b if cond == 0 else None
        if isinstance(cond, equal):  # no kink: a 0/1 factor, exactly
            return cond * a + (1 - cond) * b
        return None

    def fdiff(self, argindex=1):
        cond = self.args[0]
        return (sp.S.Zero, cond, 1 - cond)[argindex - 1]


class clip(sp.Function):  # noqa: N801
    """``clip(x, lo, hi)`` for bounds lo < hi that are numbers (or constants): jnp.clip, that is
    minimum(maximum(x, lo), hi), whose derivative in x is 1 inside, 0 outside and 1/2 at
    either bound (jax's ties)."""

    nargs = 3

    @classmethod
    def eval(cls, x, lo, hi):
        if x.is_Number and lo.is_Number and hi.is_Number:
            return min(max(x, lo), hi)
        return None

    def fdiff(self, argindex=1):
        x, lo, hi = self.args
        return TieStep(x - lo) * TieStep(hi - x) if argindex == 1 else sp.S.Zero


def make_clip(x: sp.Expr, lo: sp.Expr, hi: sp.Expr, constants: dict) -> sp.Expr:
    """``clip(x, lo, hi)``: the one function where the bounds are numbers or constants with
    lo < hi at their stated values (its derivative is then one product of steps), else what
    jnp.clip computes, minimum(maximum(x, lo), hi)."""
    lo, hi = sp.sympify(lo), sp.sympify(hi)
    gap = (hi - lo).xreplace(constants)
    if gap.is_Number and gap > 0:
        return clip(x, lo, hi)
    return minimum(maximum(x, lo), hi)


KINKS = (relu, absolute, maximum, minimum, sign, where, clip, ReluStep, AbsStep, TieStep, GeStep)


def comparison(op: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """A claim's ``a > b`` (and ``>=``, ``<``, ``<=``, ``==``) as 0/1: ``(x > 0)`` is relu's
    derivative, ``ReluStep(x)``, exactly as the derivation writes it."""
    if op == ">":
        return ReluStep(a - b)
    if op == "<":
        return ReluStep(b - a)
    if op == ">=":
        return GeStep(a - b)
    if op == "==":
        return equal(a, b)
    return GeStep(b - a)


def kink_arguments(expr: sp.Expr) -> list[sp.Expr]:
    """The expressions whose zero is a kink: relu's, abs's, sign's and each step's argument,
    maximum's and minimum's a - b, clip's x - lo and x - hi."""
    out = []
    for node in expr.atoms(*KINKS):
        if isinstance(node, (maximum, minimum)):
            out.append(node.args[0] - node.args[1])
        elif isinstance(node, clip):
            out += [node.args[0] - node.args[1], node.args[0] - node.args[2]]
        elif not isinstance(node, where):  # a where's kink is its condition's step
            out.append(node.args[0])
    return out


class equal(sp.Function):  # noqa: N801
    """A comparison ``a == b`` as 0/1 (jnp's ``(a == b)`` cast to the operands' dtype): a step,
    derivative 0, as jax's. Its arguments are put in sympy's order, so ``x == m`` and ``m == x``
    are one expression to the proofs."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a == b:
            return sp.S.One
        if a.is_Number and b.is_Number:
            return sp.S.One if a - b == 0 else sp.S.Zero
        if a.is_number and b.is_number:  # tanh(3/7): told apart at MAX_DIGITS, or undecided
            gap = abs(sp.N(a - b, MAX_DIGITS))
            if gap.is_Number and gap > MAX_GAP * (1 + abs(sp.N(a, MAX_DIGITS))):
                return sp.S.Zero
            return None
        if sp.default_sort_key(b) < sp.default_sort_key(a):
            return cls(b, a)
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _sympystr(self, printer) -> str:
        return f"({printer._print(self.args[0])} == {printer._print(self.args[1])})"


class AxisMax(sp.Function):
    """``AxisMax(logits[i, j], j, V)``: the maximum over index ``j`` (of size ``V``);
    ``AxisMax(x[b, t, c], t, T, c, C)`` over several at once (``jnp.max(x, axis=(1, 2))``: one
    max over all their elements, a tie split evenly among all of them).

    Where the output does not depend on it (the max trick's shift), a forward line ``m[i] =
    max(x[i, j], j)`` is held as an independent input, and the engine proves that
    (:func:`derivations.engine.derive.shift_problems`). Otherwise it is a reduction with jax's
    derivative (``jax.grad(jnp.max)``): the gradient goes to the max's positions, a tie split
    evenly, ``d max_j x[j] / d x[q] = (x[q] == M) / sum_j (x[j] == M)`` with ``M`` the max, the
    indicator :class:`equal` and the count an opaque sum to the proofs."""

    nargs = (3, 5, 7, 9)

    @property
    def body(self) -> sp.Expr:
        return self.args[0]

    @property
    def pairs(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(index, size) for each index the max reduces."""
        return list(zip(self.args[1::2], self.args[2::2], strict=True))

    @property
    def indices(self) -> tuple[sp.Symbol, ...]:
        return tuple(self.args[1::2])

    def renamed(self, names: dict) -> AxisMax:
        """The same max with its indices renamed (``names``: old -> new, every index)."""
        flat = [x for index, size in self.pairs for x in (names[index], size)]
        return AxisMax(self.body.xreplace(names), *flat)

    @property
    def free_symbols(self) -> set:
        sizes = set().union(*(size.free_symbols for _, size in self.pairs))
        return (self.body.free_symbols - set(self.indices)) | sizes

    def _eval_derivative(self, s):
        dummies = {x: sp.Dummy(str(x), integer=True, nonnegative=True) for x in self.indices}
        at = self.body.xreplace(dummies)
        inner = sp.diff(at, s)
        if inner == 0:
            return sp.S.Zero
        hit = equal(at, self)
        limits = [(dummies[index], 0, size - 1) for index, size in self.pairs]
        return sp.Sum(hit * inner, *limits) / sp.Sum(hit, *limits)

    def _sympystr(self, printer) -> str:
        indices = ", ".join(printer._print(x) for x in self.indices)
        return f"max({printer._print(self.body)}, {indices})"

    def _latex(self, printer) -> str:
        indices = ", ".join(printer._print(x) for x in self.indices)
        return rf"\max_{{{indices}}} {printer._print(self.body)}"


MAX_DIGITS = 60  # a max of numbers that are not rational is decided at this many digits
# two different such numbers this close (relative) are not told apart: left undecided, so no
# counterexample is made of them
MAX_GAP = sp.Float("1e-45", MAX_DIGITS)


def _top(args: tuple) -> sp.Expr | None:
    """The largest of exact numbers: rationals compared exactly; other numbers (``tanh(3/7)``)
    equal only where they are the same expression, and otherwise told apart at
    :data:`MAX_DIGITS` digits, None where two different ones are too close to tell."""
    if not args or not all(a.is_number for a in args):
        return None
    if all(a.is_Rational for a in args):
        return max(args)
    values = {a: sp.N(a, MAX_DIGITS) for a in set(args)}
    if not all(v.is_Float or v.is_Rational for v in values.values()):
        return None
    ranked = sorted(values, key=lambda a: values[a], reverse=True)
    if len(ranked) > 1 and values[ranked[0]] - values[ranked[1]] <= MAX_GAP * (
        1 + abs(values[ranked[0]])
    ):
        return None
    return ranked[0]


class MaxOf(sp.Function):
    """A max written out at concrete sizes (:func:`derivations.engine.exact.written_out`): the
    largest of its arguments, and jax's derivative, each tied argument 1 / (number of ties)."""

    @classmethod
    def eval(cls, *args):
        return _top(args)

    def fdiff(self, argindex=1):
        return MaxShare(sp.Integer(argindex - 1), *self.args)


class MaxShare(sp.Function):
    """``MaxShare(k, a0, a1, ...)``: d max(a0, a1, ...) / d ak at exact numbers: 1 / (number
    of arguments equal to the max) where ``ak`` is one of them, else 0 (``jnp.max``'s rule)."""

    @classmethod
    def eval(cls, k, *args):
        top = _top(args)
        if top is None:
            return None
        count = sum(1 for a in args if a == top)
        return sp.Rational(1, count) if args[int(k)] == top else sp.S.Zero

    def fdiff(self, argindex=1):
        return sp.S.Zero


def sigmoid(x: sp.Expr) -> sp.Expr:
    """1 / (1 + exp(-x)): plain sympy, so simplify and exact evaluation know it."""
    return 1 / (1 + sp.exp(-x))


FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "erf": sp.erf,
    "sigmoid": sigmoid,
    "abs": absolute,
    "relu": relu,
}
BINARY_FUNCTIONS = {"maximum": maximum, "minimum": minimum}
FUNCTIONS["sign"] = sign
# a claim's functions: name -> (sympy builder, number of arguments)
CLAIM_FUNCTIONS = {
    **{name: (build, 1) for name, build in FUNCTIONS.items()},
    **{name: (build, 2) for name, build in BINARY_FUNCTIONS.items()},
}
