"""The stated forward evaluated as written, in jax or torch, without sympy.

The kernel's own forward is printed from sympy's reading of the statement, and sympy reads
under the engine's assumptions (a constant's sign, a size >= 1): ``sqrt(c**2)`` is already
``-c`` there. The verification must not trust that reading, so this module parses each forward
line's *text* again with :mod:`ast` and evaluates it with array operations: ``x[i, j]`` is the
array on letters (i, j), letters line up by name, ``sum(e, j)`` / ``mean(e, i, j)`` reduce
those letters, ``one_hot(y[i], j)`` is the backend's one-hot. Constants take their stated
values as float64.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from derivations.language.evaluator import ExprEvaluator
from derivations.language.layer import Layer


class _Backend:
    """The few array operations the interpreter needs, for jax.numpy or torch."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "jax":
            import jax
            import jax.numpy as jnp

            self.xp, self.jax = jnp, jax
        else:
            import torch

            self.xp = torch

    def scalar(self, value: float):
        """A float64 scalar array (so functions apply to constants as to arrays)."""
        if self.name == "jax":
            return self.xp.asarray(value, dtype=self.xp.float64)
        return self.xp.tensor(value, dtype=self.xp.float64)

    def transpose(self, a, perm):
        return self.xp.transpose(a, perm) if self.name == "jax" else a.permute(*perm)

    def reshape(self, a, shape):
        return self.xp.reshape(a, shape) if self.name == "jax" else a.reshape(shape)

    def sum(self, a, axes):
        return self.xp.sum(a, axis=axes) if self.name == "jax" else a.sum(dim=axes)

    def max(self, a, axis):
        return self.xp.max(a, axis=axis) if self.name == "jax" else a.amax(dim=axis)

    def einsum(self, spec, *arrays):
        return self.xp.einsum(spec, *arrays)

    def one_hot(self, labels, classes, like):
        if self.name == "jax":
            return self.jax.nn.one_hot(labels, classes, dtype=like.dtype)
        import torch

        return torch.nn.functional.one_hot(labels.long(), classes).to(like.dtype)

    def function(self, name: str):
        xp = self.xp
        if self.name == "jax":
            table = {
                "exp": xp.exp,
                "log": xp.log,
                "sqrt": xp.sqrt,
                "tanh": xp.tanh,
                "erf": self.jax.scipy.special.erf,
                "sigmoid": self.jax.nn.sigmoid,
                "abs": xp.abs,
                "relu": self.jax.nn.relu,
                "maximum": xp.maximum,
                "minimum": xp.minimum,
                "sign": xp.sign,
                "clip": xp.clip,
                "where": lambda cond, a, b: xp.where(cond != 0, a, b),
            }
        else:
            table = {
                "exp": xp.exp,
                "log": xp.log,
                "sqrt": xp.sqrt,
                "tanh": xp.tanh,
                "erf": xp.special.erf,
                "sigmoid": xp.sigmoid,
                "abs": xp.abs,
                "relu": xp.relu,
                "maximum": xp.maximum,
                "minimum": xp.minimum,
                "sign": xp.sign,
                "clip": lambda x, lo, hi: xp.minimum(xp.maximum(x, lo), hi),
                "where": lambda cond, a, b: xp.where(cond != 0, a, b),
            }
        return table[name]


class _Value:
    """An array and the index letters of its axes."""

    def __init__(self, array: Any, letters: tuple[str, ...]) -> None:
        self.array, self.letters = array, letters


def _align(backend: _Backend, value: _Value, target: tuple[str, ...]):
    """``value``'s array on the letters ``target`` (transposed, size-1 axes added)."""
    if not value.letters:
        return value.array
    order = sorted(range(len(value.letters)), key=lambda k: target.index(value.letters[k]))
    array = value.array
    if order != list(range(len(order))):
        array = backend.transpose(array, tuple(order))
    placed = [value.letters[k] for k in order]
    shape = [array.shape[placed.index(x)] if x in placed else 1 for x in target]
    return backend.reshape(array, tuple(shape))


class ForwardInterpreter(ExprEvaluator):
    """One forward line's right side (already read by the layer, so valid) to a
    :class:`_Value` of the backend's arrays, from the line's text."""

    def __init__(self, layer: Layer, backend: _Backend, env: dict, sizes: dict) -> None:
        super().__init__("forward")
        self.layer, self.backend, self.env, self.sizes = layer, backend, env, sizes

    def fail(self, message: str):
        raise ValueError(f"cannot interpret: {message}")

    def unsupported(self, node: ast.AST):
        raise ValueError(f"cannot interpret {ast.unparse(node)!r}")

    def constant(self, node: ast.Constant) -> _Value:
        return _Value(self.backend.scalar(float(node.value)), ())

    def negate(self, value: _Value) -> _Value:
        return _Value(-value.array, value.letters)

    def name(self, key: str) -> _Value:
        layer = self.layer
        if key in layer.sizes:
            return _Value(self.backend.scalar(float(self.sizes[key])), ())
        for symbol, value in layer.constant_values.items():
            if str(symbol) == key:
                return _Value(self.backend.scalar(float(value)), ())
        if key == "pi":
            return _Value(self.backend.scalar(math.pi), ())
        return _Value(self.env[key], ())

    def _aligned(self, values: list[_Value]) -> tuple[list, tuple[str, ...]]:
        """The values' arrays on the union of their letters (letters line up by name)."""
        letters = tuple(dict.fromkeys(x for value in values for x in value.letters))
        return [_align(self.backend, value, letters) for value in values], letters

    def binary(self, node: ast.BinOp, a: _Value, b: _Value) -> _Value:
        (x, y), letters = self._aligned([a, b])
        return _Value(self.operators[type(node.op)](x, y), letters)

    def compare(self, symbol: str, a: _Value, b: _Value, node: ast.Compare) -> _Value:
        """A 0/1 step of the operands' dtype, no gradient."""
        (x, y), letters = self._aligned([a, b])
        truth = {">": x > y, "<": x < y, ">=": x >= y, "<=": x <= y, "==": x == y}[symbol]
        dtype = (x + y).dtype
        cast = truth.astype(dtype) if self.backend.name == "jax" else truth.to(dtype)
        return _Value(cast, letters)

    def apply(self, func: str, args: list[_Value], node: ast.Call) -> _Value:
        if len(args) == 1:
            return _Value(self.backend.function(func)(args[0].array), args[0].letters)
        every, letters = self._aligned(args)
        return _Value(self.backend.function(func)(*every), letters)

    def _eval_Subscript(self, node: ast.Subscript) -> _Value:
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        letters = tuple(item.id for item in items)
        array = self.env[node.value.id]
        if len(set(letters)) != len(letters):  # a diagonal: einsum on repeated indices
            unique = tuple(dict.fromkeys(letters))
            char = {name: "abcdefghijklmnopqrstuvwxyz"[k] for k, name in enumerate(unique)}
            spec = "".join(char[x] for x in letters) + "->" + "".join(char[x] for x in unique)
            array = self.backend.einsum(spec, array)
            letters = unique
        return _Value(array, letters)

    def _call_sum(self, node: ast.Call) -> _Value:
        return self.reduce("sum", node)

    def _call_mean(self, node: ast.Call) -> _Value:
        return self.reduce("mean", node)

    def reduce(self, func: str, node: ast.Call) -> _Value:
        body = self.eval(node.args[0])
        reduced = [arg.id for arg in node.args[1:]]
        axes = tuple(body.letters.index(x) for x in reduced)
        out = self.backend.sum(body.array, axes)
        if func == "mean":
            count = math.prod(body.array.shape[k] for k in axes)
            out = out / count
        return _Value(out, tuple(x for x in body.letters if x not in reduced))

    def _call_max(self, node: ast.Call) -> _Value:
        body = self.eval(node.args[0])
        reduced = [arg.id for arg in node.args[1:]]
        axes = tuple(body.letters.index(x) for x in reduced)
        kept = tuple(x for x in body.letters if x not in reduced)
        return _Value(self.backend.max(body.array, axes[0] if len(axes) == 1 else axes), kept)

    def _call_one_hot(self, node: ast.Call) -> _Value:
        label = self.eval(node.args[0])
        column = node.args[1].id
        classes = self.layer.labels[node.args[0].value.id][1]
        like = self.env[next(iter(self.layer.inputs))]
        out = self.backend.one_hot(label.array, self.sizes[str(classes)], like)
        return _Value(out, (*label.letters, column))


def forward(layer: Layer, backend: str = "jax"):
    """The stated forward as a function of the inputs and labels (in the statement's order),
    evaluated from the lines' text; its output has the output line's index order."""
    arrays = _Backend(backend)
    parsed = []
    for line in layer.lines:
        left, _, right = line.text.partition("=")
        parsed.append((line, ast.parse(right.strip(), mode="eval").body))

    def run(*values):
        keys = [*layer.inputs, *layer.labels]
        env = dict(zip(keys, values, strict=True))
        sizes = {}
        for key, shape in [*layer.inputs.items(), *((k, s) for k, (s, _) in layer.labels.items())]:
            for size, length in zip(shape, env[key].shape, strict=True):
                sizes[str(size)] = int(length)
        out = None
        for line, node in parsed:
            value = ForwardInterpreter(layer, arrays, env, sizes).eval(node)
            letters = tuple(str(x) for x in line.indices)
            out = _align(arrays, value, letters) if letters else value.array
            env[str(line.target)] = out
        return out

    return run
