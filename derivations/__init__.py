"""sympy derivations of backward formulas for symbolic sizes: one engine for the lecture's layers
and for yours.

Never imported by ``jaxninja`` at run time: ``python -m derivations`` runs the engine over the
lecture's layers and regenerates ``jaxninja/lecture/generated.py`` and ``docs/derivations.md``;
``jaxninja derive --layer FILE`` runs it over a layer you state. The parts, one folder each:

- :mod:`derivations.language`, the statement language: :mod:`~.language.layer` (``Layer``,
  ``load_layer``), :mod:`~.language.names`, :mod:`~.language.evaluator` (the one core every
  reading subclasses), :mod:`~.language.notation` (index notation),
  :mod:`~.language.claims` (claims in array form), :mod:`~.language.positions` (shifted
  reads), :mod:`~.language.functions`, :mod:`~.language.interpret` (the forward as written,
  for verification);
- :mod:`derivations.engine`: :mod:`~.engine.derive` (derive, prove, refute),
  :mod:`~.engine.collapse`, :mod:`~.engine.proofs`, :mod:`~.engine.kinks` (claims through
  kinks), :mod:`~.engine.shifts` (shifted reads, the exact check), :mod:`~.engine.exact`,
  :mod:`~.engine.budget` (a layer's time budget and progress);
- :mod:`derivations.printing`: :mod:`~.printing.jaxcode` and :mod:`~.printing.claimcode`
  (code), :mod:`~.printing.layout`, :mod:`~.printing.latex`;
- :mod:`derivations.outputs`, the files and reports they make: :mod:`~.outputs.kernels` (a
  layer file's kernel and its verification), :mod:`~.outputs.safety` (float32 safety of a
  kernel), :mod:`~.outputs.kernelfile` (where a kernel may be written),
  :mod:`~.outputs.generated_module` (``generated.py``), :mod:`~.outputs.markdown`,
  :mod:`~.outputs.files`, :mod:`~.outputs.layercheck` (``check_layer``, for notebooks);
- at the top: the lecture's layers (:mod:`~derivations.lecture`), run by
  :mod:`~derivations.build`; what ``jaxninja derive`` prints, :mod:`~derivations.report` (the
  lecture) and :mod:`~derivations.userrun` (a layer file): the paths the CLI imports.
"""


def __getattr__(name: str):
    """``derivations.Layer``, ``load_layer`` and ``check_layer``, imported on first use
    (``python -m derivations`` never needs them)."""
    if name in ("Layer", "load_layer"):
        from derivations.language import layer

        return getattr(layer, name)
    if name == "check_layer":
        from derivations.outputs.layercheck import check_layer

        return check_layer
    raise AttributeError(f"module 'derivations' has no attribute {name!r}")
