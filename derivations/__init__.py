"""sympy derivations of backward formulas for symbolic sizes: one engine for the lecture's layers
and for yours.

Never imported by ``jaxninja`` at run time: ``python -m derivations`` runs the engine over the
lecture's layers and regenerates ``jaxninja/lecture/generated.py`` and ``docs/derivations.md``;
``jaxninja derive --layer FILE`` runs it over a layer you state. The parts:

- the statement language: :mod:`~derivations.userlayer` (``Layer``, ``load_layer``),
  :mod:`~derivations.claims` (claims in array form), :mod:`~derivations.functions`,
  :mod:`~derivations.interpret` (the forward as written, for verification);
- the engine: :mod:`~derivations.usercheck` (derive, prove, refute, the exact check),
  :mod:`~derivations.collapse`, :mod:`~derivations.proofs`, :mod:`~derivations.kinks` (claims
  through kinks), :mod:`~derivations.exact`;
- the lecture's layers: :mod:`~derivations.lecture`, run by :mod:`~derivations.build`;
- printing: :mod:`~derivations.arrayprint` and :mod:`~derivations.claimcode` (code),
  :mod:`~derivations.layout`, :mod:`~derivations.latex`; the files they make:
  :mod:`~derivations.userkernel` (a layer file's kernel and its verification),
  :mod:`~derivations.module` (``generated.py``), :mod:`~derivations.markdown`,
  :mod:`~derivations.report` and :mod:`~derivations.userrun` (what ``jaxninja derive`` prints),
  :mod:`~derivations.budget` (a layer's time budget and progress),
  :mod:`~derivations.kernelout` (where a kernel may be written), :mod:`~derivations.safety`
  (float32 safety of a kernel), :mod:`~derivations.layercheck` (``check_layer``, for
  notebooks).
"""


def __getattr__(name: str):
    """``derivations.Layer``, ``load_layer`` and ``check_layer``, imported on first use
    (``python -m derivations`` never needs them)."""
    if name in ("Layer", "load_layer"):
        from derivations import userlayer

        return getattr(userlayer, name)
    if name == "check_layer":
        from derivations.layercheck import check_layer

        return check_layer
    raise AttributeError(f"module 'derivations' has no attribute {name!r}")
