"""``jaxninja check``: every gradient of Exercise 1, manual JAX vs ``jax.grad`` vs torch autograd.

The contract it enforces (exit status 1 when a row breaks it):

- manual JAX vs ``jax.grad``: bit-exact in all 26 rows eagerly; under ``--jit`` <= 32 eps·scale;
- jaxninja's manual JAX vs torch autograd: <= 64 eps·scale, 128 for the zero-by-symmetry rows;
- torch's manual backward (fixed tanh line) vs torch autograd: bit-exact 26/26;
- Exercises 2 and 3, the derived kernels, vs the chunked ``dlogits`` and ``dhprebn``: approximate
  by nature, <= 64 eps·scale; the fused forwards vs the chunked loss and ``hpreact`` likewise.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import generated, numerics, parallel
from jaxninja.backward import manual_backward, reference_grads
from jaxninja.compare import Row, compare, compare_rows
from jaxninja.config import CheckConfig
from jaxninja.data import Dataset, load_dataset
from jaxninja.model import (
    Params,
    batchnorm_fused,
    cross_entropy,
    forward_chunked,
    init_params,
    n_params,
)
from jaxninja.settings import resolve_dtype, torch_available

JSON_FORMAT = 2  # version 2: each row's error is "eps_scale" (version 1 called it "ulps")


class CheckResult(NamedTuple):
    """Everything ``check`` measured; ``rows`` is the table."""

    config: CheckConfig
    source: str
    dataset: dict[str, list[int]]
    n_params: int
    loss: float
    rows: list[Row]
    dlogits: np.ndarray

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def as_json(self) -> dict:
        return {
            "format": JSON_FORMAT,
            "config": self.config._asdict() | {"against": list(self.config.against)},
            "source": self.source,
            "dataset": self.dataset,
            "n_params": self.n_params,
            "loss": self.loss,
            "ok": self.ok,
            "rows": [r.as_json() for r in self.rows],
        }


def _numpy(grads: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in grads.items()}


def jax_grads(params: Params, xb: jax.Array, yb: jax.Array, jit: bool):
    """(intermediates, manual grads, jax.grad grads), eagerly or each stage jit-compiled."""
    fwd_fn, man_fn, ref_fn = forward_chunked, manual_backward, reference_grads
    if jit:
        fwd_fn, man_fn, ref_fn = jax.jit(fwd_fn), jax.jit(man_fn), jax.jit(ref_fn)
    fwd = fwd_fn(params, xb, yb)
    return fwd, _numpy(man_fn(params, fwd, xb, yb)), _numpy(ref_fn(params, xb, yb))


def torch_rows(
    params: Params, xb: np.ndarray, yb: np.ndarray, manual: dict[str, np.ndarray], tanh: str
) -> list[Row]:
    """jaxninja's manual gradients vs torch autograd, and torch's manual backward vs autograd."""
    import torch_ref

    tp = torch_ref.to_torch(params._asdict())
    fwd = torch_ref.forward(tp, xb, yb)
    autograd = {k: v.numpy() for k, v in torch_ref.autograd_grads(tp, fwd).items()}
    torch_manual = {k: v.numpy() for k, v in torch_ref.manual_backward(tp, fwd, tanh).items()}
    return compare_rows(
        manual, autograd, "torch", numerics.TORCH, numerics.TORCH_SYMMETRIC
    ) + compare_rows(torch_manual, autograd, "torch-manual")


def fused_rows(params: Params, fwd, yb: jax.Array, reference: dict[str, np.ndarray]) -> list[Row]:
    """Exercises 2 and 3: the derived kernels and the fused forwards vs the chunked values."""
    dlogits = generated.cross_entropy_backward(fwd.logits, yb)
    dhpreact = jnp.asarray(reference["hpreact"])
    dhprebn, _, _ = generated.batchnorm_backward(dhpreact, fwd.bnraw, fwd.bnvar_inv, params.bngain)
    loss = cross_entropy(fwd.logits, yb)
    hpreact = batchnorm_fused(fwd.hprebn, params.bngain, params.bnbias)
    pairs = [
        ("logits", dlogits, reference["logits"]),
        ("hprebn", dhprebn, reference["hprebn"]),
        ("loss (fwd)", loss, fwd.loss),
        ("hpreact (fwd)", hpreact, fwd.hpreact),
    ]
    return [
        compare(name, np.asarray(value), np.asarray(ref), "fused", bound=numerics.FUSED)
        for name, value, ref in pairs
    ]


def default_against() -> tuple[str, ...]:
    """Both references, or jax alone when torch is not installed."""
    return ("jax", "torch") if torch_available() else ("jax",)


def exercise_setup(
    cfg: CheckConfig, dataset: Dataset, dtype: np.dtype | None = None
) -> tuple[Params, jax.Array, jax.Array]:
    """Exercise 1's parameters and minibatch: both drawn from ``jax.random.key(cfg.seed)``."""
    dtype = resolve_dtype(cfg.dtype) if dtype is None else dtype
    kparams, kbatch = jax.random.split(jax.random.key(cfg.seed))
    vocab_size = dataset.vocab.size
    params = init_params(kparams, vocab_size, cfg.n_embd, cfg.n_hidden, cfg.block_size, dtype)
    ix = np.asarray(jax.random.randint(kbatch, (cfg.batch_size,), 0, len(dataset.train.y)))
    return params, jnp.asarray(dataset.train.x[ix]), jnp.asarray(dataset.train.y[ix])


def cross_check(cfg: CheckConfig | None = None, dataset: Dataset | None = None) -> CheckResult:
    """Build the notebook's batch and parameters, then compare every row against each reference.

    ``cfg`` defaults to Exercise 1's setup against every installed reference; ``dataset`` to
    :func:`load_dataset` of ``cfg.data`` (else ``$JAXNINJA_NAMES``, else the default data set).
    """
    cfg = CheckConfig(against=default_against()) if cfg is None else cfg
    cfg.validate()
    dtype = resolve_dtype(cfg.dtype)  # float64 switches on jax_enable_x64 here, and checks it
    mesh = parallel.make_mesh(cfg.devices) if cfg.devices != 1 else None
    ds = (
        dataset
        if dataset is not None
        else load_dataset(cfg.data, cfg.block_size, cfg.max_data_bytes)
    )
    params, xb, yb = exercise_setup(cfg, ds, dtype)
    fwd, manual, reference = jax_grads(params, xb, yb, cfg.jit)
    rows: list[Row] = []
    if "jax" in cfg.against:
        rows += compare_rows(
            manual, reference, "jax", numerics.JAX_JIT if cfg.jit else numerics.EXACT
        )
        rows += fused_rows(params, fwd, yb, reference)
    if mesh is not None:
        rows += parallel.sharded_rows(mesh, params, xb, yb)
    if "torch" in cfg.against:
        rows += torch_rows(params, np.asarray(xb), np.asarray(yb), manual, cfg.torch_tanh)
    return CheckResult(
        cfg, ds.source, ds.shapes(), n_params(params), float(fwd.loss), rows, manual["logits"]
    )


def format_table(result: CheckResult) -> str:
    """The text table: one row per gradient per reference, then a summary line per reference."""
    cfg = result.config
    lines = [
        f"data {result.source}: train/val/test {result.dataset['train'][0]}/"
        f"{result.dataset['val'][0]}/{result.dataset['test'][0]} examples",
        f"n_embd {cfg.n_embd}, n_hidden {cfg.n_hidden}, block_size {cfg.block_size}, "
        f"batch {cfg.batch_size}, seed {cfg.seed}, {cfg.dtype}, "
        f"{'jit' if cfg.jit else 'eager'}: {result.n_params} parameters, "
        f"loss {result.loss:.6f}",
        "",
        f"{'row':15s} {'against':12s} {'shape':12s} {'exact':5s} {'close':5s} "
        f"{'maxdiff':>10s} {'eps·scale':>10s} {'bound':>6s}  ok",
    ]
    for r in result.rows:
        bound = "exact" if r.bound == 0 else f"{r.bound:g}"
        lines.append(
            f"{r.name:15s} {r.against:12s} {str(r.shape):12s} {str(r.exact):5s} "
            f"{str(r.close):5s} {r.maxdiff:10.3g} {r.eps_scale:10.3g} {bound:>6s}  "
            f"{'ok' if r.ok else 'FAIL'}"
        )
    lines.append("")
    for against in dict.fromkeys(r.against for r in result.rows):
        rs = [r for r in result.rows if r.against == against]
        lines.append(
            f"{against}: {sum(r.exact for r in rs)}/{len(rs)} bit-exact, "
            f"{sum(r.ok for r in rs)}/{len(rs)} within contract, "
            f"max {max(r.eps_scale for r in rs):.3g} eps·scale"
        )
    lines.append("all rows within contract" if result.ok else "SOME ROWS BREAK THE CONTRACT")
    return "\n".join(lines)


__all__ = ["CheckConfig", "CheckResult", "cross_check", "default_against", "format_table"]
