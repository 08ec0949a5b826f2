r"""Where one training step's time goes: the XLA ops of ``step.train_chunk``'s loop body.

    JAX_PLATFORMS=cpu python -m benchmarks.step_profile
    JAX_PLATFORMS=cpu python -m benchmarks.step_profile \
        --xla-option xla_cpu_experimental_ynn_fusion_type=    # without YNNPACK fusions

Compiles one chunk of the lecture's configuration with XLA's per-op trace events on, traces a
run of it with ``jax.profiler`` and prints, for each op of the loop body, the median duration
over the chunk's steps (medians, so a step that lost the core to another process does not
count). ``--xla-option KEY=VALUE`` (repeatable) compiles with an XLA debug option, e.g.
``xla_cpu_experimental_ynn_fusion_type=`` (no YNNPACK fusions), to compare variants; run the
variants back to back, the machine's load moves these figures by ±30 %.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import statistics
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.data import load_dataset
from jaxninja.model import init_params
from jaxninja.step import Schedule, train_chunk


def parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value) with true/false/int values converted."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    return key, int(value) if value.lstrip("-").isdigit() else value


def op_medians(trace_dir: str, n_steps: int) -> dict[str, float]:
    """Median microseconds of every trace event that occurred exactly once per step."""
    path = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)[0]
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    durations: dict[str, list[float]] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(("$", "end: ")):
            durations[e["name"]].append(e.get("dur", 0.0))
    return {k: statistics.median(v) for k, v in durations.items() if len(v) == n_steps}


def matmul_ops(hlo: str) -> set[str]:
    """Names of the instructions that are a dot or a fusion whose computation holds one."""
    blocks = re.split(r"\n(?=\S)", hlo)  # computations start at column 0
    with_dot = {b.split()[0].lstrip("%") for b in blocks if " dot(" in b}
    names = set()
    for m in re.finditer(r"^\s*%?(\S+) = [^\n]*?(?: dot\(|calls=%(\S+?)[,\s])", hlo, re.M):
        if m.group(2) is None or m.group(2) in with_dot:
            names.add(m.group(1))
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2_000, help="steps in the traced chunk")
    p.add_argument("--top", type=int, default=12, help="how many of the costliest ops to list")
    p.add_argument(
        "--xla-option",
        type=parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an XLA compile option (repeatable)",
    )
    args = p.parse_args(argv)

    ds = load_dataset(None, 3)
    x, y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    params = init_params(jax.random.key(0), ds.vocab.size, 10, 200, 3)
    key, sched = jax.random.key(42), Schedule()
    options = {"xla_cpu_enable_xprof_traceme": True, **dict(args.xla_option)}
    run = train_chunk.lower(params, key, np.int32(0), x, y, args.steps, 32, sched).compile(
        compiler_options=options
    )
    jax.block_until_ready(run(params, key, np.int32(0), x, y))
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            jax.block_until_ready(run(params, key, np.int32(0), x, y))
        ops = op_medians(trace_dir, args.steps)

    dots = matmul_ops(run.as_text())
    matmuls = {k: v for k, v in ops.items() if k in dots}
    total, mm = sum(ops.values()), sum(matmuls.values())
    print(f"options: {dict(args.xla_option) or 'XLA defaults'}")
    print(
        f"{len(ops)} ops per step, sum of medians {total:.1f} µs: {len(matmuls)} matmuls "
        f"{mm:.1f} µs ({mm / total:.0%}), {len(ops) - len(matmuls)} others "
        f"{total - mm:.1f} µs"
    )
    for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {name:40s} {us:6.1f} µs{'  (matmul)' if name in dots else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
