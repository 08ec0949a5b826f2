"""Why the notebook's hpreact row was not bit-exact, measured: before/after for JAX and torch.

    python benchmarks/hpreact_story.py [--seeds 20]

For each backward (the literal notebook lines, then the fixed ones) it counts, over seeds, the
rows that are bit-exact against autodiff and the worst error in eps·scale. The torch rows are
measured twice: with this CPU's kernels and, in a subprocess, with ATEN_CPU_CAPABILITY=default
(no FMA). Batch 32 (the notebook) and batch 7 (where -1/n is no power of two).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.gradcheck.compare import compare_rows
from jaxninja.lecture.backward import ROWS, manual_backward, reference_grads
from jaxninja.lecture.model import forward_chunked, init_params


def batch(seed: int, n: int):
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = init_params(kp, 27, 10, 64, 3)
    return params, jax.random.randint(kx, (n, 3), 0, 27), jax.random.randint(ky, (n,), 0, 27)


def summarise(pairs) -> tuple[int, float]:
    """(the fewest bit-exact rows over seeds, the largest eps·scale) of (manual, reference)s."""
    worst_exact, worst_ulps = len(ROWS), 0.0
    for manual, reference in pairs:
        rows = compare_rows(manual, reference, "ref")
        worst_exact = min(worst_exact, sum(r.exact for r in rows))
        worst_ulps = max(worst_ulps, max(r.eps_scale for r in rows))
    return worst_exact, worst_ulps


def jax_pairs(seeds: int, n: int, tanh: str, log_line: str):
    for seed in range(seeds):
        params, xb, yb = batch(seed, n)
        fwd = forward_chunked(params, xb, yb)
        manual = {k: np.asarray(v) for k, v in manual_backward(params, fwd, xb, yb, tanh).items()}
        if log_line == "notebook":  # dprobs = (1.0 / probs) * dlogprobs: the probs row only
            manual["probs"] = np.asarray((1.0 / fwd.probs) * manual["logprobs"])
        yield manual, {k: np.asarray(v) for k, v in reference_grads(params, xb, yb).items()}


def torch_pairs(seeds: int, n: int, tanh: str):
    import torch_ref

    for seed in range(seeds):
        params, xb, yb = batch(seed, n)
        tp = torch_ref.to_torch({k: np.asarray(v) for k, v in params._asdict().items()})
        fwd = torch_ref.forward(tp, np.asarray(xb), np.asarray(yb))
        autograd = {k: v.numpy() for k, v in torch_ref.autograd_grads(tp, fwd).items()}
        manual = {k: v.numpy() for k, v in torch_ref.manual_backward(tp, fwd, tanh).items()}
        yield manual, autograd


def torch_rows(seeds: int) -> list[dict]:
    import torch

    cap = torch.backends.cpu.get_cpu_capability()
    return [
        {
            "backward": f"torch, {tanh} tanh line",
            "kernels": cap,
            "n": n,
            **dict(zip(("exact", "ulps"), summarise(torch_pairs(seeds, n, tanh)), strict=True)),
        }
        for tanh in ("notebook", "fixed")
        for n in (32, 7)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per row (default 20)")
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_only:
        print(json.dumps(torch_rows(args.seeds)))
        return
    rows = []
    for label, tanh, log_line in [
        ("JAX, notebook tanh + dprobs lines", "notebook", "notebook"),
        ("JAX, notebook dprobs line only", "jax", "notebook"),
        ("JAX, jax's tanh and log forms", "jax", "jax"),
    ]:
        for n in (32, 7):
            exact, ulps = summarise(jax_pairs(args.seeds, n, tanh, log_line))
            rows.append({"backward": label, "kernels": "XLA", "n": n, "exact": exact, "ulps": ulps})
    rows += torch_rows(args.seeds)
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    out = subprocess.run(
        [sys.executable, __file__, "--seeds", str(args.seeds), "--torch-only"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows += json.loads(out.strip().splitlines()[-1])
    print(
        f"| backward | kernels | n | fewest exact rows (of 26) over {args.seeds} seeds "
        f"| max eps·scale |\n|---|---|---|---|---|"
    )
    for r in rows:
        print(f"| {r['backward']} | {r['kernels']} | {r['n']} | {r['exact']} | {r['ulps']:.3g} |")


if __name__ == "__main__":
    jnp.zeros(1)  # fail early if jax is broken
    main()
