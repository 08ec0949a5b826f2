"""sympy derivations of every backward formula of the lecture, for a symbolic batch size.

Never imported by ``jaxninja`` at run time: ``python -m derivations`` runs the derivations and
proofs and regenerates ``jaxninja/generated.py`` and ``docs/derivations.md`` from them.
"""
