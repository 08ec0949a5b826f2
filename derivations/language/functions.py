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
    """A claim's ``a > b`` (and ``>=``, ``<``, ``<=``) as 0/1: ``(x > 0)`` is relu's
    derivative, ``ReluStep(x)``, exactly as the derivation writes it."""
    if op == ">":
        return ReluStep(a - b)
    if op == "<":
        return ReluStep(b - a)
    if op == ">=":
        return GeStep(a - b)
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


class AxisMax(sp.Function):
    """``AxisMax(logits[i, j], j, V)``: the maximum over index ``j`` (of size ``V``), the max
    trick's shift. Never differentiated: a forward line ``m[i] = max(x[i, j], j)`` is held as
    an independent input, and the engine proves the output does not depend on it
    (:func:`derivations.engine.derive.shift_problems`), so any shift, the max included, is exact."""

    nargs = 3

    @property
    def free_symbols(self) -> set:
        body, index, size = self.args
        return (body.free_symbols - {index}) | size.free_symbols

    def fdiff(self, argindex=1):
        raise TypeError("AxisMax is a shift: it is never differentiated")

    def _latex(self, printer) -> str:
        body, index, _ = self.args
        return rf"\max_{{{printer._print(index)}}} {printer._print(body)}"


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
