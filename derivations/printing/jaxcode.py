"""Print an index expression of any rank as jax.numpy code that reads as written by hand.

Every printed value holds its *natural* axes: the index symbols it depends on, in an order the
printer chooses (the target's order at the top, the order of a sum's largest array inside it).
Where values of different axes meet, each is transposed (``.T``, ``jnp.transpose``) and given
``None`` axes so numpy's right-aligned broadcasting lines them up; leading ``None`` axes are left
out. Sums print without ``keepdims``:

- one array summed over some of its indices: ``jnp.sum(dout, axis=0)``;
- two matrices sharing one summed index: ``dout @ W.T``;
- any other product of arrays: ``jnp.einsum('nd,dh->nh', x, W)``;
- a one-hot of labels times an array, summed over the labels' indices: a scatter-add,
  ``jnp.zeros((V, E), dtype).at[xb].add(demb)``;
- anything else: the body on its natural axes, then ``jnp.sum(..., axis=k)``.

``KroneckerDelta(c, y[i])`` prints as ``jax.nn.one_hot(y, V)`` (on the axes of ``y`` and then
``c``), ``KroneckerDelta(a, b)`` as ``jnp.eye(N)``. The kinked functions' derivatives
(:mod:`derivations.language.functions`) print with jax's value at the kink: ``AbsStep`` +1 at 0,
``ReluStep`` 0 at 0, ``TieStep`` 1/2 at a tie; ``sign``, ``minimum``, ``clip`` and ``where`` print
as jnp's own.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

BIG = 2**53  # integers beyond float64's exact range print as floats (jnp has no big ints)


class PrintError(ValueError):
    """An index expression with no array form under these rules."""


def _is_atom(code: str) -> bool:
    """``code`` needs no parentheses before ``[...]`` or ``.T``: a name or one call."""
    if code.replace(".", "").replace("_", "").isalnum():
        return True
    if not code.endswith(")") or "(" not in code:
        return False
    head = code[: code.index("(")]
    if not head.replace(".", "").replace("_", "").isalnum():
        return False
    depth = 0
    for pos, char in enumerate(code[len(head) :], start=len(head)):
        depth += (char == "(") - (char == ")")
        if depth == 0 and pos != len(code) - 1:
            return False
    return True


def paren(code: str) -> str:
    """``code`` ready for a postfix ``[...]`` or ``.T``."""
    return code if _is_atom(code) else f"({code})"


class ArrayPrinter(StrPrinter):
    """Prints one right-hand side; settings: ``sizes`` (index symbol -> size) and ``dtype``
    (the one-hot's dtype code)."""

    printmethod = "_arraycode"  # no class's own printing hook applies here
    _default_settings = {**StrPrinter._default_settings, "sizes": None, "dtype": None}

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__(settings)
        self._sizes: dict[sp.Symbol, sp.Expr] = dict(self._settings["sizes"] or {})
        self._frame: tuple[sp.Symbol, ...] = ()  # the axes of the value being printed
        self._order: list[sp.Symbol] = []  # preference: the target's indices, then dummies

    def _as_ordered_terms(self, expr: sp.Expr, order: str | None = None) -> list[sp.Expr]:
        """Positive terms first: ``x - mu``, not ``-mu + x``."""
        terms = super()._as_ordered_terms(expr, order=order)
        return sorted(terms, key=lambda term: term.could_extract_minus_sign())

    # ---- entry
    def print_at(self, expr: sp.Expr, target: tuple[sp.Symbol, ...]) -> tuple[str, tuple]:
        """``expr`` as code on axes that are a subsequence of ``target`` (the free indices of
        the array being defined); returns the code and its axes."""
        self._order = list(target)
        self._frame = tuple(x for x in target if x in self._indices(expr))
        return self._print(expr), self._frame

    def _indices(self, expr: sp.Expr) -> set[sp.Symbol]:
        return {x for x in expr.free_symbols if x in self._sizes}

    # ---- placing a value with axes ``dims`` into the current frame
    def _place(self, code: str, dims: tuple[sp.Symbol, ...]) -> str:
        frame = self._frame
        if any(d not in frame for d in dims):
            raise PrintError(f"{code}: axes {dims} outside {frame}")
        ordered = tuple(sorted(dims, key=frame.index))
        if ordered != dims:
            if len(dims) == 2:
                code = f"{paren(code)}.T"
            else:
                perm = tuple(dims.index(d) for d in ordered)
                code = f"jnp.transpose({code}, {perm})"
        if not ordered:
            return code
        start = frame.index(ordered[0])
        slots = [":" if f in ordered else "None" for f in frame[start:]]
        if "None" not in slots:
            return code  # numpy's broadcasting adds the leading axes
        while slots[-1] == ":":
            slots.pop()  # x[:, None] is x[:, None, :]
        return f"{paren(code)}[{', '.join(slots)}]"

    # ---- arrays
    def _plain(self, element: sp.Indexed) -> tuple[sp.Symbol, ...]:
        indices = tuple(element.indices)
        if not all(x in self._sizes for x in indices):
            raise PrintError(f"{element}: indices must be index letters")
        return indices

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        indices = self._plain(expr)
        base = str(expr.base)
        if len(set(indices)) != len(indices):
            if len(indices) == 2:
                return self._place(f"jnp.diagonal({base})", indices[:1])
            raise PrintError(f"{expr}: a repeated index beyond a matrix diagonal")
        return self._place(base, indices)

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        left, right = expr.args
        labels = [x for x in (left, right) if isinstance(x, sp.Indexed)]
        if len(labels) == 1:
            label = labels[0]
            column = right if label is left else left
            rows = self._plain(label)
            if column not in self._sizes or column in rows:
                raise PrintError(f"{expr}: one_hot needs a class index of its own")
            size = self._print(self._sizes[column])
            code = f"jax.nn.one_hot({label.base}, {size}, dtype={self._settings['dtype']})"
            return self._place(code, (*rows, column))
        if left in self._sizes and right in self._sizes:
            size = self._print(self._sizes[left])
            return self._place(f"jnp.eye({size}, dtype={self._settings['dtype']})", (left, right))
        raise PrintError(f"{expr}: no array form for this delta")

    # ---- sums
    def _print_Sum(self, expr: sp.Sum) -> str:
        dummies = []
        saved_frame, saved_order, saved_sizes = self._frame, list(self._order), dict(self._sizes)
        scale = sp.Integer(1)
        for dummy, low, high in expr.limits:
            if low != 0:
                raise PrintError(f"{expr}: a sum must start at 0")
            self._sizes[dummy] = high + 1
            if dummy in expr.function.free_symbols:
                dummies.append(dummy)
            else:
                scale *= high + 1
        self._order = [x for x in self._order if x not in dummies] + dummies
        try:
            code, dims = self._reduce(expr.function, tuple(dummies))
        finally:
            self._sizes, self._order = saved_sizes, saved_order
            self._frame = saved_frame
        placed = self._place(code, dims)
        if scale != 1:
            return f"{self._print(scale)} * {placed}"
        return placed

    def _print_AxisMax(self, expr) -> str:
        """``jnp.max(body, axis=k)``: the body on its natural axes, the indices' axes reduced
        (``axis=(k, l)`` for several)."""
        body, dummies = expr.body, expr.indices
        saved_frame, saved_order, saved_sizes = self._frame, list(self._order), dict(self._sizes)
        self._sizes.update(dict(expr.pairs))
        self._order = [x for x in self._order if x not in dummies] + list(dummies)
        try:
            self._frame = tuple(x for x in self._order if x in self._indices(body))
            code = self._print(body)
            axes = tuple(self._frame.index(d) for d in dummies)
            kept = tuple(x for x in self._frame if x not in dummies)
        finally:
            self._sizes, self._order = saved_sizes, saved_order
            self._frame = saved_frame
        axis = axes[0] if len(axes) == 1 else axes
        return self._place(f"jnp.max({code}, axis={axis})", kept)

    def _reduce(self, body: sp.Expr, dummies: tuple) -> tuple[str, tuple]:
        """``body`` summed over ``dummies``: its code and the axes of the result."""
        indices = self._indices(body)
        coeff, rest = body.as_independent(*indices, as_Add=False)
        factors = sp.Mul.make_args(rest)
        arrays = [x for x in factors if isinstance(x, sp.Indexed)]
        prefix = "" if coeff == 1 else f"{self._parenthesize(coeff, PRECEDENCE['Mul'])} * "
        scatter = self._scatter(factors, dummies, prefix)
        if scatter is not None:
            return scatter
        if len(arrays) == len(factors) and all(len(set(self._plain(x))) == x.rank for x in arrays):
            if len(arrays) == 1:
                return self._single_sum(arrays[0], dummies, prefix)
            sets = [set(x.indices) for x in arrays]
            if not any(all(other <= one for other in sets) for one in sets):
                product = self._matmul(arrays, dummies)  # a real contraction
                if product is not None:
                    return f"{prefix}{product[0]}", product[1]
                return self._einsum(arrays, dummies, prefix)
        largest = max(
            sorted(body.atoms(sp.Indexed), key=sp.default_sort_key),
            key=lambda x: len(set(x.indices) & indices),
            default=None,
        )
        head = [x for x in (largest.indices if largest is not None else ()) if x in indices]
        head = list(dict.fromkeys(head))
        rest_order = [x for x in self._order if x in indices and x not in head]
        self._frame = tuple(head + rest_order)
        code = self._print(body)
        axes = tuple(self._frame.index(d) for d in dummies)
        kept = tuple(x for x in self._frame if x not in dummies)
        return f"jnp.sum({code}, axis={axes[0] if len(axes) == 1 else axes})", kept

    def _scatter(self, factors: tuple, dummies: tuple, prefix: str) -> tuple[str, tuple] | None:
        """``sum(KroneckerDelta(r, xb[i, t]) * demb[i, t, s], i, t)``, the labels' indices the
        summed ones: a scatter-add that accumulates repeated labels, ``jnp.zeros((V, E))
        .at[xb].add(demb)`` (an embedding's backward), never an (n, T, V, E) one-hot product."""
        deltas = [x for x in factors if isinstance(x, sp.KroneckerDelta)]
        arrays = [x for x in factors if isinstance(x, sp.Indexed)]
        if len(factors) != 2 or len(deltas) != 1 or len(arrays) != 1:
            return None
        labels = [x for x in deltas[0].args if isinstance(x, sp.Indexed)]
        if len(labels) != 1:
            return None
        label, values = labels[0], arrays[0]
        row = next(x for x in deltas[0].args if x is not label)
        indices = tuple(label.indices)
        rest = tuple(values.indices[len(indices) :])
        if (
            set(indices) != set(dummies)
            or len(set(indices)) != len(indices)
            or tuple(values.indices[: len(indices)]) != indices
            or row in dummies
            or row not in self._sizes
            or any(x in dummies or x == row for x in rest)
        ):
            return None
        shape = ", ".join(self._print(self._sizes[x]) for x in (row, *rest))
        zeros = f"jnp.zeros(({shape}), dtype={self._settings['dtype']})"
        return f"{prefix}{zeros}.at[{label.base}].add({values.base})", (row, *rest)

    def _single_sum(self, array: sp.Indexed, dummies: tuple, prefix: str) -> tuple[str, tuple]:
        indices = tuple(array.indices)
        axes = tuple(indices.index(d) for d in dummies)
        kept = tuple(x for x in indices if x not in dummies)
        axis = axes[0] if len(axes) == 1 else axes
        return f"{prefix}jnp.sum({array.base}, axis={axis})", kept

    def _matmul(self, arrays: list[sp.Indexed], dummies: tuple) -> tuple[str, tuple] | None:
        """``A @ B`` for two matrices sharing the one summed index, oriented so the result's
        axes follow the target's order."""
        if len(arrays) != 2 or len(dummies) != 1 or any(x.rank != 2 for x in arrays):
            return None
        (dummy,) = dummies
        if not all(dummy in x.indices for x in arrays):
            return None
        others = [next(i for i in x.indices if i != dummy) for x in arrays]
        if others[0] == others[1]:
            return None
        rank = {x: k for k, x in enumerate(self._order)}
        left, right = sorted(range(2), key=lambda k: rank.get(others[k], len(rank)))
        a, b = arrays[left], arrays[right]
        lhs = f"{a.base}" if a.indices[1] == dummy else f"{a.base}.T"
        rhs = f"{b.base}" if b.indices[0] == dummy else f"{b.base}.T"
        return f"({lhs} @ {rhs})", (others[left], others[right])

    def _einsum(self, arrays: list[sp.Indexed], dummies: tuple, prefix: str) -> tuple[str, tuple]:
        letters = self._letters({x for a in arrays for x in a.indices})
        kept = [x for x in self._order if any(x in a.indices for a in arrays) and x not in dummies]
        kept += [x for a in arrays for x in a.indices if x not in kept and x not in dummies]
        kept = list(dict.fromkeys(kept))
        spec = ",".join("".join(letters[x] for x in a.indices) for a in arrays)
        spec += "->" + "".join(letters[x] for x in kept)
        operands = ", ".join(str(a.base) for a in arrays)
        return f'{prefix}jnp.einsum("{spec}", {operands})', tuple(kept)

    def _letters(self, symbols: set[sp.Symbol]) -> dict[sp.Symbol, str]:
        """An einsum letter per index: its size's initial when that is unambiguous."""
        out: dict[sp.Symbol, str] = {}
        for symbol in sorted(symbols, key=lambda x: (self._order + [x]).index(x)):
            size = str(self._sizes[symbol])
            letter = size[0].lower() if size[0].isalpha() else "a"
            if letter in out.values():
                letter = next(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in out.values())
            out[symbol] = letter
        return out

    # ---- scalars and functions
    def _print_Integer(self, expr: sp.Integer) -> str:
        return repr(float(expr)) if abs(int(expr)) > BIG else str(expr)

    def _print_Rational(self, expr: sp.Rational) -> str:
        if abs(expr.p) > BIG or expr.q > BIG:
            return repr(float(expr))
        return f"{expr.p}/{expr.q}"

    def _print_Pi(self, expr) -> str:
        return "jnp.pi"

    def _print_Exp1(self, expr) -> str:
        return "jnp.e"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            return f"jnp.sqrt({self._print(expr.base)})"
        if expr.exp == -sp.S.Half:
            return f"1/jnp.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational)

    def _print_Function(self, expr: sp.Function) -> str:
        name = type(expr).__name__
        args = [self._print(arg) for arg in expr.args]
        if name in ("exp", "log", "tanh", "erf", "cosh", "sinh", "cos", "sin"):
            return (
                f"jnp.{name}({args[0]})" if name != "erf" else f"jax.scipy.special.erf({args[0]})"
            )
        if name == "sigmoid":
            return f"jax.nn.sigmoid({args[0]})"
        if name == "absolute":
            return f"jnp.abs({args[0]})"
        if name == "AbsStep":
            return f"jnp.where({args[0]} >= 0, 1.0, -1.0)"  # jax: grad(abs)(0) = 1
        if name == "TieStep":
            return f"jnp.where({args[0]} > 0, 1.0, jnp.where({args[0]} < 0, 0.0, 0.5))"
        if name == "GeStep":
            return f"jnp.where({args[0]} >= 0, 1.0, 0.0)"
        if name == "equal":  # a max's positions, (x == m) as 0/1
            return f"jnp.where({args[0]} == {args[1]}, 1.0, 0.0)"
        if name == "ReluStep":
            return f"jnp.where({args[0]} > 0, 1.0, 0.0)"  # jax: relu'(0) = 0
        if name == "relu":
            return f"jax.nn.relu({args[0]})"
        if name in ("maximum", "minimum", "sign"):
            return f"jnp.{name}({', '.join(args)})"
        if name == "clip":
            return f"jnp.clip({', '.join(args)})"
        if name == "where":
            cond = expr.args[0]  # a comparison's step: printed as the comparison itself
            if type(cond).__name__ == "ReluStep":
                test = f"{self._print(cond.args[0])} > 0"
            elif type(cond).__name__ == "GeStep":
                test = f"{self._print(cond.args[0])} >= 0"
            else:
                test = f"{args[0]} != 0"
            return f"jnp.where({test}, {args[1]}, {args[2]})"
        raise PrintError(f"no array form for {name}")

    _print_exp = _print_Function
    _print_log = _print_Function


def array_code(
    expr: sp.Expr, target: tuple[sp.Symbol, ...], sizes: dict, dtype: str
) -> tuple[str, tuple]:
    """``expr`` as jax.numpy code (see the module docstring); its axes are a subsequence of
    ``target``, whose sizes, with every other free index's, are in ``sizes``."""
    printer = ArrayPrinter({"sizes": sizes, "dtype": dtype})
    return printer.print_at(expr, target)
