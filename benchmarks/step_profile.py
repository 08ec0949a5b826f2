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

The same trace is taken of ``train_speed``'s row (m), the step's six matmuls alone, in the same
process, and every op is put in a kind (matmul, reduction, elementwise, update, copy, gather /
scatter): the table of µs per kind shows where (a) spends the time (m) does not, and the last
line what issue 15's target (a) >= 0.85 x (m) would leave for everything but the matmuls.
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

from benchmarks.train_speed import six_matmuls
from jaxninja.data import load_dataset
from jaxninja.lecture.model import init_params
from jaxninja.lecture.step import Schedule, train_chunk


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


KINDS = ("matmul", "reduction", "elementwise", "update", "copy", "gather/scatter")


def op_kinds(hlo: str, n_steps: int) -> dict[str, str]:
    """Each instruction of the loop body (the while with ``n_steps`` trips) and its kind: a
    matmul, a copy, a fusion holding a reduce or a gather/scatter, one whose result the loop
    carries (the parameter updates, the loss, the step counter), or elementwise."""
    blocks = {b.split()[0].lstrip("%"): b for b in re.split(r"\n(?=\S)", hlo) if b.strip()}
    loop = re.search(rf'body=%(\S+?),.*"known_trip_count":{{"n":"{n_steps}"}}', hlo)
    body = blocks[loop.group(1)]
    root = re.search(r"ROOT \S+ = .*? tuple\((.*?)\)(?:,|$)", body, re.M).group(1)
    carried = {name.lstrip("%") for name in re.findall(r"%[\w.-]+", root)}
    dots = matmul_ops(hlo)
    kinds = {}
    for m in re.finditer(r"^\s+%(\S+) = \S+ (\S+?)\((.*)$", body, re.M):
        name, opcode, rest = m.groups()
        if opcode in ("parameter", "constant", "get-tuple-element", "tuple", "bitcast"):
            continue
        called = re.search(r"calls=%(\S+?)[,\s]", rest)
        inside = blocks.get(called.group(1), "") if called else ""
        if name in dots:
            kinds[name] = "matmul"
        elif opcode == "copy":
            kinds[name] = "copy"
        elif " reduce(" in inside:
            kinds[name] = "reduction"
        elif re.search(r" (scatter|gather)\(", inside):
            kinds[name] = "gather/scatter"
        elif name in carried:
            kinds[name] = "update"
        else:
            kinds[name] = "elementwise"
    return kinds


def profile(runs: dict, n_steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Each loop-body op's median µs per step, for each ``name: (compiled, args)`` of ``runs``:
    ``repeats`` traced calls of each, taken in turn (so that a change of the machine's load hits
    them alike), and per op the median of the calls' medians."""
    seen: dict[str, dict[str, list[float]]] = {name: collections.defaultdict(list) for name in runs}
    for compiled, args in runs.values():
        jax.block_until_ready(compiled(*args))
    for _ in range(repeats):
        for name, (compiled, args) in runs.items():
            with tempfile.TemporaryDirectory() as trace_dir:
                with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                    jax.block_until_ready(compiled(*args))
                for op, us in op_medians(trace_dir, n_steps).items():
                    seen[name][op].append(us)
    return {name: {op: statistics.median(v) for op, v in ops.items()} for name, ops in seen.items()}


def by_kind(ops: dict[str, float], kinds: dict[str, str]) -> dict[str, tuple[int, float]]:
    """(op count, µs) per kind."""
    mine = {kind: [k for k in ops if kinds[k] == kind] for kind in KINDS}
    return {kind: (len(names), sum(ops[k] for k in names)) for kind, names in mine.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000, help="steps in a traced chunk")
    p.add_argument("--repeats", type=int, default=3, help="traced chunks of (a) and of (m)")
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
    args_a = (params, key, np.int32(0), x, y)
    run_a = train_chunk.lower(*args_a, args.steps, 32, sched).compile(compiler_options=options)
    args_m = (params.C[x[:32]].reshape(32, -1), params.W1, params.W2)  # (m)'s shapes
    run_m = six_matmuls.lower(*args_m, args.steps).compile(compiler_options=options)
    medians = profile({"a": (run_a, args_a), "m": (run_m, args_m)}, args.steps, args.repeats)
    kinds, kinds_m = (op_kinds(run.as_text(), args.steps) for run in (run_a, run_m))
    ops = {k: v for k, v in medians["a"].items() if k in kinds}
    ops_m = {k: v for k, v in medians["m"].items() if k in kinds_m}

    a, m = by_kind(ops, kinds), by_kind(ops_m, kinds_m)
    total, total_m = sum(ops.values()), sum(ops_m.values())
    print(
        f"options: {dict(args.xla_option) or 'XLA defaults'}; medians over {args.steps} steps "
        f"x {args.repeats} chunks of each, taken in turn"
    )
    print(f"{'':16s} {'(a) ops':>8s} {'(a) µs':>8s} {'(m) ops':>8s} {'(m) µs':>8s}")
    for kind in KINDS:
        print(f"{kind:16s} {a[kind][0]:8d} {a[kind][1]:8.1f} {m[kind][0]:8d} {m[kind][1]:8.1f}")
    print(f"{'total':16s} {len(ops):8d} {total:8.1f} {len(ops_m):8d} {total_m:8.1f}")
    n_other, other = len(ops) - a["matmul"][0], total - a["matmul"][1]
    budget = total_m / 0.85 - a["matmul"][1]
    print(
        f"(a) >= 0.85 x (m) needs a step of <= {total_m / 0.85:.1f} µs: after (a)'s matmuls "
        f"({a['matmul'][1]:.1f} µs) {budget:.1f} µs for the {n_other} other ops, which take "
        f"{other:.1f} µs ({other / n_other:.2f} µs each)"
    )
    for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {name:40s} {us:6.1f} µs  {kinds[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
