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
- :mod:`derivations.outputs`, the files and reports they make: :mod:`~.outputs.kernel` (a
  layer file's kernel, printed), :mod:`~.outputs.verify` (the kernel against jax.vjp and torch
  in float64), :mod:`~.outputs.verify_float32` (float32 safety at large inputs),
  :mod:`~.outputs.kernelfile` (where a kernel may be written), :mod:`~.outputs.layer_report`
  (a layer file's run and what ``jaxninja derive --layer`` prints), :mod:`~.outputs.report`
  (what ``jaxninja derive`` prints of the lecture), :mod:`~.outputs.generated_module`
  (``generated.py``), :mod:`~.outputs.markdown`, :mod:`~.outputs.files`,
  :mod:`~.outputs.layercheck` (``check_layer``, for notebooks);
- at the top: the lecture's layers (:mod:`~derivations.lecture`), run by
  :mod:`~derivations.build`, and the two entry points the ``jaxninja derive`` command calls,
  :func:`derive_file` and :func:`lecture_report`.
"""


def derive_file(path, out=None, allow_unsafe: bool = False, progress=None):
    """``jaxninja derive --layer FILE``: the layer a file states, derived, proved, its kernel
    verified and written to ``out`` only if all of that passed; returns the report
    (:class:`derivations.outputs.layer_report.Report`: ``body``, ``verdict``, ``status``)."""
    from derivations.outputs.layer_report import run_file

    return run_file(path, out, allow_unsafe, progress=progress)


def lecture_report(steps: bool = True):
    """``jaxninja derive``: every lecture layer through the engine; returns (the report's
    text, the results: :class:`derivations.build.Results`)."""
    from derivations import build
    from derivations.outputs import report

    results = build.run_all()
    return report.render_report(results, steps=steps), results


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
