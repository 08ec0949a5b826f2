"""``flat = reshape(x, (B, T2, 2*C))``: numpy's row-major reshape as a forward line.

A line of its own, the target without indices, the new shape a tuple of sizes (axes, declared
sizes, or expressions of them: ``2*C``, ``T // 2`` is not one). It is rewritten into the index
notation the engine already reads: each element of the target is the element of ``x`` at the
same row-major position, ``flat[k0, k1, k2] = x[p0, p1, p2]`` with ``L = (k0*T2 + k1)*(2*C) +
k2`` and ``p_m = L // (product of x's later sizes) % (x's size m)`` (the first without the
``%``), so a reshape is checked exactly at every size up to the layer's ``check_sizes`` (its
positions, ``//`` and ``%``, are not affine: CHECKED, never PROVED by that alone). The two
shapes must hold the same number of elements for every size (their products equal as
polynomials), else it is a one-line error. Part 5's FlattenConsecutive(2) is
``flat = reshape(x, (B, T // 2, 2*C))`` with ``T = 2*T2``: ``reshape(x, (B, T2, 2*C))``.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

from derivations.language.names import LayerError

INDEX = "_k{}"  # the rewritten line's index names (no statement's name starts with "_")


def is_reshape(node: ast.AST) -> bool:
    """``node`` is a call ``reshape(...)``."""
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "reshape"
    )


def rewrite(target: str, node: ast.Call, layer, where: str) -> tuple[str, tuple[str, ...]]:
    """The index-notation line ``target[k0, ...] = x[p0, ...]`` of ``target = reshape(x,
    shape)``, and the target's shape as the statement wrote it (for ``shapes=``)."""
    if len(node.args) != 2 or node.keywords:
        raise LayerError(f"{where}: reshape(x, (B, T2, 2*C)) takes an array and a shape tuple")
    source, shape = node.args
    known = isinstance(source, ast.Name) and (source.id in layer.shapes or source.id in layer.names)
    if not known:
        raise LayerError(f"{where}: reshape: {ast.unparse(source)!r} is not an array of the layer")
    if not (isinstance(shape, ast.Tuple) and shape.elts):
        raise LayerError(f"{where}: reshape: the shape {ast.unparse(shape)!r} is not a tuple")
    new = tuple(ast.unparse(size) for size in shape.elts)
    sizes = [layer._size(size, f"{where}: reshape") for size in new]
    old = layer.shape_of(source.id)
    if sp.expand(math.prod(sizes) - math.prod(old)) != 0:
        raise LayerError(
            f"{where}: reshape: {dims(new)} holds {math.prod(sizes)} elements and "
            f"{source.id} {dims(map(str, old))} holds {math.prod(old)}: not equal for every size"
        )
    keys = [INDEX.format(k) for k in range(len(new))]
    # leading axes of the same size are read as they are (row-major: the rest of the position
    # is below one step of them), so only the axes that change are flattened and unravelled
    same = 0
    while same < min(len(old), len(new)) - 1 and sp.expand(old[same] - sizes[same]) == 0:
        same += 1
    flat = keys[same]
    for key, size in zip(keys[same + 1 :], new[same + 1 :], strict=True):
        flat = f"({flat}) * ({size}) + {key}"
    positions = keys[:same]
    for m in range(same, len(old)):
        later = math.prod(old[m + 1 :]) if m + 1 < len(old) else sp.Integer(1)
        step = f"({flat}) // ({sp.sstr(later)})" if later != 1 else f"({flat})"
        positions.append(step if m == same else f"{step} % ({sp.sstr(old[m])})")
    text = f"{target}[{', '.join(keys)}] = {source.id}[{', '.join(positions)}]"
    return text, new


def dims(shape) -> str:
    return "(" + ", ".join(shape) + ("," if len(tuple(shape)) == 1 else "") + ")"
