"""What a name in a statement may be, and the error every statement mistake raises.

A name is a Python identifier, read as Python reads it (NFKC: full-width ``ｘ`` is ``x``), that
is not a Python keyword or a name the kernel or the statement language itself uses
(:data:`RESERVED`).
"""

from __future__ import annotations

import io
import keyword
import tokenize
import unicodedata

import sympy as sp

from derivations.language.functions import BINARY_FUNCTIONS, FUNCTIONS
from jaxninja.errors import ConfigError

# the free indices of a gradient, one per position of its array (p on axis 0, q on axis 1, ...)
FREE = tuple(sp.Symbol(x, integer=True, nonnegative=True) for x in "pqrsuvw")
# names a statement may not take: the kernel's modules and helpers, the language's own words
RESERVED = {
    "jax",
    "jnp",
    "np",
    "sp",
    "sum",
    "mean",
    "max",
    "one_hot",
    "einsum",
    "pi",
    "axis",
    "keepdims",
    "reshape",
    "Layer",
    "load_layer",
    *FUNCTIONS,
    *BINARY_FUNCTIONS,
    "where",
    "clip",
}


class LayerError(ConfigError):
    """A layer statement that cannot be used; the message names the symbol at fault."""


def dims(shape: tuple) -> str:
    """A shape as Python writes it: (n, D), (D,), ()."""
    return str(tuple(map(str, shape))).replace("'", "")


def index_symbol(letter: str) -> sp.Symbol:
    """An index of a line (``i``, ``t``, ``head``): an integer from 0."""
    return sp.Symbol(letter, integer=True, nonnegative=True)


def fold(key: str) -> str:
    """A name as Python reads it: NFKC-folded (full-width ``ｘ`` is ``x``), as the parser folds
    every identifier of a forward line, a claim and the kernel."""
    return unicodedata.normalize("NFKC", key)


def check_name(
    key: str, what: str, taken: dict[str, str], reserved: frozenset | set = RESERVED
) -> str:
    """A statement's name must be a Python identifier the kernel can use as a variable, and
    none of ``reserved`` (a layer's name, only ever a prefix: ``tanh_forward``, reserves none);
    two names are one when they fold together. Returns the name as Python reads it."""
    if not isinstance(key, str) or not key.isidentifier():
        raise LayerError(f"{what} name {key!r} is not a Python identifier")
    name = fold(key)
    if keyword.iskeyword(name):
        raise LayerError(f"{what} name {key!r} is reserved: {name!r} is a Python keyword")
    if name in reserved or name.startswith("_"):
        why = "a name the kernel or the statement language uses"
        if name.startswith("_"):
            why = "a name starting with '_' (the kernel's own helpers)"
        raise LayerError(f"{what} name {key!r} is reserved: {why}")
    if name in taken:
        same = "" if name == key else f" (Python reads {key!r} as {name!r})"
        raise LayerError(f"{what} name {key!r} is already the name of {taken[name]}{same}")
    taken[name] = f"{what} {key}"
    return name


def keywords_in(text: str) -> str:
    """Why ``text`` may not parse, for a syntax error's message: `` ('lambda' is a Python
    keyword, not a name)`` for the first keyword written where a name would be; else ``''``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return ""
    for token in tokens:
        if token.type == tokenize.NAME and keyword.iskeyword(token.string):
            return f" ({token.string!r} is a Python keyword, not a name)"
    return ""
