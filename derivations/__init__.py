"""sympy derivations of every backward formula of the lecture, for a symbolic batch size.

Never imported by ``jaxninja`` at run time: ``python -m derivations`` runs the derivations and
proofs and regenerates ``jaxninja/generated.py`` and ``docs/derivations.md`` from them.
``derivations.Layer`` states your own layer (see :mod:`derivations.userlayer`).
"""


def __getattr__(name: str):
    """``derivations.Layer``, imported on first use (``python -m derivations`` never needs it)."""
    if name == "Layer":
        from derivations.userlayer import Layer

        return Layer
    raise AttributeError(f"module 'derivations' has no attribute {name!r}")
