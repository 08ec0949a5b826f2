"""``jaxninja check``: every gradient of Exercise 1, manual JAX vs ``jax.grad`` vs torch autograd.

The contract it enforces (exit status 1 when a row breaks it):

- manual JAX vs ``jax.grad``: bit-exact in all 26 rows eagerly; under ``--jit`` <= 32 eps·scale;
- jaxninja's manual JAX vs torch autograd: <= 64 eps·scale, 128 for the zero-by-symmetry rows;
- torch's manual backward (fixed tanh line) vs torch autograd: bit-exact 26/26;
- Exercises 2 and 3, the derived kernels, vs the chunked ``dlogits`` and ``dhprebn``: approximate
  by nature, <= 64 eps·scale; the fused forwards vs the chunked loss and ``hpreact`` likewise.
"""

from __future__ import annotations

import argparse
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import generated, parallel
from jaxninja.backward import manual_backward, reference_grads
from jaxninja.checkpoint import prepare_out_dir
from jaxninja.compare import Row, compare, compare_rows
from jaxninja.data import Dataset, load_dataset
from jaxninja.model import (
    Params,
    batchnorm_fused,
    cross_entropy,
    forward_chunked,
    init_params,
    n_params,
)
from jaxninja.settings import (
    check_against,
    check_batch_size,
    check_block_size,
    check_seed,
    check_width,
    resolve_dtype,
    torch_available,
)

JAX_JIT_BOUND = 32.0  # XLA may fuse and reorder the two backwards differently under jit
TORCH_BOUND = 64.0  # different libraries, different kernels: a few dozen eps at the row's scale
TORCH_SYMMETRIC_BOUND = 128.0  # rows that are sums of terms that cancel to ~0
FUSED_BOUND = 64.0  # closed forms reassociate the sums of the chunked chain rule


class CheckConfig(NamedTuple):
    """What to check: the model's sizes, the batch, the dtype and the references."""

    data: str | None = None
    n_embd: int = 10
    n_hidden: int = 64
    block_size: int = 3
    batch_size: int = 32
    seed: int = 42
    dtype: str = "float32"
    against: tuple[str, ...] = ("jax", "torch")
    jit: bool = False
    torch_tanh: str = "fixed"
    devices: int = 1  # > 1: also the batch split over this many devices (parallel.sharded_rows)


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
        manual, autograd, "torch", TORCH_BOUND, TORCH_SYMMETRIC_BOUND
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
        compare(name, np.asarray(value), np.asarray(ref), "fused", bound=FUSED_BOUND)
        for name, value, ref in pairs
    ]


def cross_check(cfg: CheckConfig, dataset: Dataset | None = None) -> CheckResult:
    """Build the notebook's batch and parameters, then compare every row against each reference."""
    check_batch_size(cfg.batch_size)
    check_block_size(cfg.block_size)
    check_width(cfg.n_embd, "--n-embd")
    check_width(cfg.n_hidden, "--n-hidden")
    check_seed(cfg.seed)
    for name in cfg.against:
        check_against(name)
    dtype = resolve_dtype(cfg.dtype)  # float64 switches on jax_enable_x64 here, and checks it
    mesh = parallel.make_mesh(cfg.devices) if cfg.devices != 1 else None
    if mesh is not None:
        parallel.check_divisible(cfg.batch_size, cfg.devices)
    ds = dataset if dataset is not None else load_dataset(cfg.data, cfg.block_size)
    kparams, kbatch = jax.random.split(jax.random.key(cfg.seed))
    params = init_params(kparams, ds.vocab.size, cfg.n_embd, cfg.n_hidden, cfg.block_size, dtype)
    ix = np.asarray(jax.random.randint(kbatch, (cfg.batch_size,), 0, len(ds.train.y)))
    xb, yb = jnp.asarray(ds.train.x[ix]), jnp.asarray(ds.train.y[ix])
    fwd, manual, reference = jax_grads(params, xb, yb, cfg.jit)
    rows: list[Row] = []
    if "jax" in cfg.against:
        rows += compare_rows(manual, reference, "jax", JAX_JIT_BOUND if cfg.jit else 0.0)
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
            f"{str(r.close):5s} {r.maxdiff:10.3g} {r.ulps:10.3g} {bound:>6s}  "
            f"{'ok' if r.ok else 'FAIL'}"
        )
    lines.append("")
    for against in dict.fromkeys(r.against for r in result.rows):
        rs = [r for r in result.rows if r.against == against]
        lines.append(
            f"{against}: {sum(r.exact for r in rs)}/{len(rs)} bit-exact, "
            f"{sum(r.ok for r in rs)}/{len(rs)} within contract, "
            f"max {max(r.ulps for r in rs):.3g} eps·scale"
        )
    lines.append("all rows within contract" if result.ok else "SOME ROWS BREAK THE CONTRACT")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``jaxninja check``."""
    p.add_argument(
        "--data",
        help="word list, one word a line (default: $JAXNINJA_NAMES, "
        "../shared/data/names.txt, else the names package's census names)",
    )
    p.add_argument("--n-embd", type=int, default=10, help="embedding size (default 10)")
    p.add_argument("--n-hidden", type=int, default=64, help="hidden units (default 64)")
    p.add_argument("--block-size", type=int, default=3, help="context length (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size n (default 32)")
    p.add_argument("--seed", type=int, default=42, help="seed of parameters and batch")
    p.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")
    p.add_argument(
        "--against",
        help="comma-separated references: jax, torch (default: jax,torch, or jax alone when "
        "torch is not installed)",
    )
    p.add_argument("--jit", action="store_true", help="jit-compile forward and both backwards")
    p.add_argument(
        "--torch-tanh",
        choices=("fixed", "notebook"),
        default="fixed",
        help="torch manual backward's tanh line: the notebook's (1 - h**2) * dh or "
        "the fixed addcmul form (default fixed)",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        metavar="N",
        help="also split the batch over N devices and compare with 1 device and jax.grad "
        "(on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N) (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="DIR", help="save dlogits.png and errors.png into DIR")


def parse_against(text: str | None) -> tuple[str, ...]:
    """``jax,torch`` -> ("jax", "torch"), each name checked (torch must be installed when named);
    None -> both references, or jax alone when torch is not installed."""
    if text is None:
        return ("jax", "torch") if torch_available() else ("jax",)
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",")))
    return tuple(check_against(name) for name in names)


def run(args: argparse.Namespace) -> int:
    """``jaxninja check``: print the table (or JSON); exit 1 when a row breaks the contract."""
    cfg = CheckConfig(
        args.data,
        args.n_embd,
        args.n_hidden,
        args.block_size,
        args.batch_size,
        args.seed,
        args.dtype,
        parse_against(args.against),
        args.jit,
        args.torch_tanh,
        args.devices,
    )
    if args.plot:  # refuse an unusable folder before the work, not after
        prepare_out_dir(args.plot, "--plot")
    result = cross_check(cfg)
    print(json.dumps(result.as_json()) if args.json else format_table(result))
    if args.plot:
        from jaxninja.plot_check import save_plots

        save_plots(result, args.plot)
    return 0 if result.ok else 1


__all__ = ["CheckConfig", "CheckResult", "cross_check", "format_table"]
