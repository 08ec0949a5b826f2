"""sympy derivations of every backward formula of the lecture, for a symbolic batch size.

Never imported by ``jaxninja`` at run time: ``python -m derivations`` runs the derivations and
proofs and regenerates ``jaxninja/generated.py`` and ``docs/derivations.md`` from them.
``derivations.Layer`` states your own layer and ``derivations.load_layer`` reads one from a file
(see :mod:`derivations.userlayer`).
"""


def __getattr__(name: str):
    """``derivations.Layer`` and ``load_layer``, imported on first use (``python -m
    derivations`` never needs them)."""
    if name in ("Layer", "load_layer"):
        from derivations import userlayer

        return getattr(userlayer, name)
    raise AttributeError(f"module 'derivations' has no attribute {name!r}")
