"""``jaxninja check``: every gradient of Exercise 1, manual JAX vs ``jax.grad`` vs torch autograd.

The contract it enforces (exit status 1 when a row breaks it):

- manual JAX vs ``jax.grad``: bit-exact in all 26 rows eagerly; under ``--jit`` <= 32 eps·scale;
- jaxninja's manual JAX vs torch autograd: <= 64 eps·scale, 128 for the zero-by-symmetry rows;
- torch's manual backward (fixed tanh line) vs torch autograd: bit-exact 26/26;
- Exercises 2 and 3, the derived kernels, vs the chunked ``dlogits`` and ``dhprebn``: approximate
  by nature, <= 64 eps·scale; the fused forwards vs the chunked loss and ``hpreact`` likewise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import numerics
from jaxninja.checks import default_references, dtype_scope
from jaxninja.config import CheckConfig
from jaxninja.data import Dataset, load_dataset
from jaxninja.devices import parallel
from jaxninja.gradcheck import model_check
from jaxninja.gradcheck.compare import Row, compare, compare_rows
from jaxninja.gradcheck.conditioning import amplifications, widen_rows
from jaxninja.gradcheck.explain import explain_rows, no_fd
from jaxninja.gradcheck.model_check import (
    MODES,
    Bounds,
    Pairs,
    cross_check_model,
    jit_mode,
    parse_modes,
    row_pairs,
    summary_lines,
    table_lines,
    tag_mode,
)
from jaxninja.lecture import generated
from jaxninja.lecture.backward import ROWS
from jaxninja.lecture.model import (
    Intermediates,
    Params,
    batchnorm_fused,
    cross_entropy,
    n_params,
)
from jaxninja.models.lecture import lecture_model

JSON_FORMAT = model_check.JSON_FORMAT  # 3; version 2 named each row's error "eps_scale" (1: "ulps")


class CheckResult(NamedTuple):
    """Everything ``check`` measured; ``rows`` is the table."""

    config: CheckConfig
    source: str
    dataset: dict[str, list[int]]
    n_params: int
    loss: float
    rows: list[Row]
    dlogits: np.ndarray
    inputs: tuple[Any, Any] | None = None  # (params, batch) the rows were computed at
    modes: tuple[str, ...] = ()  # the modes whose rows the table holds (both: eager, jit)
    manual: dict[str, np.ndarray] | None = None  # the first mode's arrays, for --plot's maps
    reference: dict[str, np.ndarray] | None = None
    autograd: dict[str, np.ndarray] | None = None
    pairs: Pairs | None = None  # (mode, against, name) -> (mine, reference): --plot's maps

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def as_json(self) -> dict:
        return {
            "format": JSON_FORMAT,
            "config": {
                **self.config.to_dict(),
                "jit": jit_mode(self.modes or (MODES[self.config.jit],)),
            },
            "source": self.source,
            "dataset": self.dataset,
            "n_params": self.n_params,
            "loss": self.loss,
            "ok": self.ok,
            "rows": [r.as_json() for r in self.rows],
        }


def torch_manual_rows(
    params: Params,
    xb: np.ndarray,
    yb: np.ndarray,
    autograd: dict[str, np.ndarray],
    tanh: str,
    pairs: dict | None = None,
) -> list[Row]:
    """torch's manual backward (the notebook's, in torch) vs torch autograd: bit-exact.
    ``pairs``, if given, receives each row's ``name: (torch manual, autograd)``."""
    import torch_ref

    tp = torch_ref.to_torch(params._asdict())
    fwd = torch_ref.forward(tp, xb, yb)
    torch_manual = {k: v.numpy() for k, v in torch_ref.manual_backward(tp, fwd, tanh).items()}
    if pairs is not None:
        pairs.update({k: (torch_manual[k], v) for k, v in autograd.items() if k in torch_manual})
    return compare_rows(torch_manual, autograd, "torch-manual")


def fused_rows(
    params: Params, fwd, yb: jax.Array, reference: dict[str, np.ndarray], pairs: dict | None = None
) -> list[Row]:
    """Exercises 2 and 3: the derived kernels and the fused forwards vs the chunked values.
    ``pairs``, if given, receives each row's ``name: (fused, chunked)``."""
    dlogits = generated.cross_entropy_backward(fwd.logits, yb)
    dhpreact = jnp.asarray(reference["hpreact"])
    dhprebn, _, _ = generated.batchnorm_backward(dhpreact, fwd.bnraw, fwd.bnvar_inv, params.bngain)
    loss = cross_entropy(fwd.logits, yb)
    hpreact = batchnorm_fused(fwd.hprebn, params.bngain, params.bnbias)
    compared = [
        ("logits", dlogits, reference["logits"]),
        ("hprebn", dhprebn, reference["hprebn"]),
        ("loss (fwd)", loss, fwd.loss),
        ("hpreact (fwd)", hpreact, fwd.hpreact),
    ]
    scales: dict[str, float | None] = {}
    if yb.shape[0] == 2:  # the condition: BatchNorm of 2 values, d hprebn is 0 by symmetry
        terms = np.asarray(params.bngain * fwd.bnvar_inv * dhpreact)
        scales["hprebn"] = numerics.row_scale(terms)
    rows = []
    for name, value, ref in compared:
        if pairs is not None:
            pairs[name] = (np.asarray(value), np.asarray(ref))
        scale = scales.get(name)
        row = compare(
            name, np.asarray(value), np.asarray(ref), "fused", scale=scale, bound=numerics.FUSED
        )
        if scale is not None:
            why = f"{BATCH_2}; {row.diagnosis}" if row.diagnosis else BATCH_2
            row = row._replace(diagnosis=why)
        rows.append(row)
    return rows


BATCH_2 = (
    "batch 2: BatchNorm's output is ±1/√2 whatever its input, so the true d hprebn is 0 and "
    "the kernel's terms cancel to rounding; measured at their scale, max|bngain·bnvar_inv·"
    "dhpreact|, not at its own"
)
"""Said on the fused ``hprebn`` row at batch 2, where its own scale is rounding noise."""


def lecture_bounds(jit: bool) -> Bounds:
    """The lecture's contract: bit-exact eagerly (its backward follows autodiff's operation
    order), 32 under jit; 64 vs torch, 128 for the zero-by-symmetry rows."""
    return Bounds(
        jax=numerics.JAX_JIT if jit else numerics.EXACT,
        torch=numerics.TORCH,
        torch_scale_rows=numerics.TORCH_SYMMETRIC,
    )


def exercise_setup(cfg: CheckConfig, dataset: Dataset) -> tuple[Params, jax.Array, jax.Array]:
    """Exercise 1's parameters and minibatch, exactly as ``check`` draws them (the notebook's
    setup): ``jax.random.key(cfg.seed)`` split into the parameters' key and the batch's."""
    model = lecture_model(cfg, dataset)
    kinit, kbatch = jax.random.split(jax.random.key(cfg.seed))
    return (model.init(kinit), *model.batch(kbatch))


def cross_check(
    cfg: CheckConfig | None = None,
    dataset: Dataset | None = None,
    *,
    inputs: tuple[Any, Any] | None = None,
    input_scale: float = 1.0,
    explain: bool = True,
    jit: str | None = None,
    fd_full: bool = False,
) -> CheckResult:
    """Build the notebook's batch and parameters, then compare every row against each reference.

    This is :func:`jaxninja.gradcheck.model_check.cross_check_model` applied to
    :func:`lecture_model`, with
    the lecture's bounds, plus the lecture's own rows: Exercises 2 and 3 (``fused``), N devices
    (``--devices``) and torch's manual backward (``torch-manual``).

    ``cfg`` defaults to Exercise 1's setup against every installed reference; ``dataset`` to
    :func:`load_dataset` of ``cfg.data`` (else ``$JAXNINJA_NAMES``, else the default data set).
    Float64 turns on ``jax_enable_x64`` for the call (:func:`jaxninja.checks.dtype_scope`).
    ``inputs``, ``input_scale``, ``explain``: as
    :func:`jaxninja.gradcheck.model_check.cross_check_model`'s (a float32 row over its bound,
    ``fused`` and ``torch-manual`` rows too, is explained by a rerun in float64).
    ``jit``: "eager", "jit" or "both" (default: ``cfg.jit``); with both the table holds each
    row once per mode, eager first (fd's rows for each, against one oracle measured once).
    ``fd_full``: fd checks every element (refused past
    :data:`jaxninja.gradcheck.finite_diff.FULL_MAX_FORWARDS` forwards).
    """
    cfg = CheckConfig(against=default_references()) if cfg is None else cfg
    cfg.validate()
    if dataset is None:
        dataset = load_dataset(cfg.data, cfg.block_size, cfg.max_data_bytes)
    modes = parse_modes(cfg.jit if jit is None else jit)
    results: list[CheckResult] = []
    fd_memo: dict = {}  # fd's oracle, measured once for every mode's backward
    for mode in modes:
        one = cfg.replace(jit=mode == "jit")
        result = _one_mode(one, dataset, inputs, input_scale, explain, fd_full, fd_memo)
        results.append(result._replace(rows=tag_mode(result.rows, mode)))
    rows = [r for result in results for r in result.rows]
    pairs = {k: v for result in results for k, v in (result.pairs or {}).items()}
    return results[0]._replace(rows=rows, modes=modes, pairs=pairs)


def _one_mode(
    cfg: CheckConfig,
    dataset: Dataset,
    inputs: tuple[Any, Any] | None,
    input_scale: float,
    explain: bool,
    fd_full: bool = False,
    fd_memo: dict | None = None,
) -> CheckResult:
    """One mode's table (``cfg.jit``), float32 rows over their bound explained."""
    with dtype_scope(cfg.dtype):  # float64: x64 on for this call only
        result = _cross_check(cfg, dataset, inputs, input_scale, fd_full, fd_memo)
    if not explain:
        return result

    def rerun(dtype: str, scale: float) -> list[Row]:
        again = cfg.replace(dtype=dtype, against=no_fd(cfg.against))
        return cross_check(
            again, dataset, inputs=result.inputs, input_scale=scale, explain=False
        ).rows

    return result._replace(rows=explain_rows(result.rows, cfg.dtype, rerun))


def _cross_check(
    cfg: CheckConfig,
    ds: Dataset,
    inputs: tuple[Any, Any] | None,
    input_scale: float,
    fd_full: bool = False,
    fd_memo: dict | None = None,
) -> CheckResult:
    mesh = parallel.make_mesh(cfg.devices) if cfg.devices != 1 else None
    result = cross_check_model(
        lecture_model(cfg, ds),
        seed=cfg.seed,
        dtype=cfg.dtype,
        jit=cfg.jit,
        against=cfg.against,
        bounds=lecture_bounds(cfg.jit),
        inputs=inputs,
        input_scale=input_scale,
        explain=False,
        fd_full=fd_full,
        conditioner=amplifications,
        fd_memo=fd_memo,
    )
    params, (xb, yb) = result.params, result.batch
    fwd = Intermediates(**result.acts, loss=jnp.asarray(result.loss, params.W1.dtype))
    mode = MODES[cfg.jit]
    rows = [r for r in result.rows if r.against == "jax"]
    fused: dict = {}
    torch_manual: dict = {}
    if "jax" in cfg.against:
        rows += fused_rows(params, fwd, yb, result.reference, fused)
    if mesh is not None:
        rows += parallel.sharded_rows(mesh, params, xb, yb)
    if "torch" in cfg.against:
        rows += [r for r in result.rows if r.against == "torch"]
        autograd = {k: result.autograd[k] for k in ROWS}
        rows += torch_manual_rows(
            params, np.asarray(xb), np.asarray(yb), autograd, cfg.torch_tanh, torch_manual
        )
    rows = widen_rows(rows, result.amplify, cfg.batch_size)
    rows += [r for r in result.rows if r.against == "fd"]
    return CheckResult(
        cfg,
        ds.source,
        ds.shapes(),
        n_params(params),
        result.loss,
        rows,
        result.manual["logits"],
        (result.params, result.batch),
        manual=result.manual,
        reference=result.reference,
        autograd=result.autograd,
        pairs=_pairs(result, mode, fused, torch_manual),
    )


def _pairs(result, mode: str, fused: dict, torch_manual: dict) -> Pairs:
    """Every row's arrays for ``--plot``'s maps: the model table's, the fused and the torch
    manual rows'."""
    pairs = row_pairs(result, mode)
    pairs.update({(mode, "fused", k): v for k, v in fused.items()})
    pairs.update({(mode, "torch-manual", k): v for k, v in torch_manual.items()})
    return pairs


def format_table(result: CheckResult) -> str:
    """The text table: one row per gradient per reference, then a summary line per reference."""
    cfg = result.config
    lines = [
        f"data {result.source}: train/val/test {result.dataset['train'][0]}/"
        f"{result.dataset['val'][0]}/{result.dataset['test'][0]} examples",
        f"n_embd {cfg.n_embd}, n_hidden {cfg.n_hidden}, block_size {cfg.block_size}, "
        f"batch {cfg.batch_size}, seed {cfg.seed}, {cfg.dtype}, "
        f"{jit_mode(result.modes or (MODES[cfg.jit],))}: {result.n_params} parameters, "
        f"loss {result.loss:.6f}",
        "",
        *table_lines(result.rows),
        "",
        *summary_lines(result.rows),
    ]
    return "\n".join(lines)


__all__ = ["CheckResult", "cross_check", "format_table"]
