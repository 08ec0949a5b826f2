"""Training speed of the lecture's MLP, side by side in one process (not a test).

    JAX_PLATFORMS=cpu python -m benchmarks.train_speed            # 1-2 minutes on 2 cores
    JAX_PLATFORMS=cpu python -m benchmarks.train_speed --rounds 9 --json speed.json

Each round runs every loop for a fixed number of SGD steps on the lecture's configuration
(n_embd 10, n_hidden 200, block 3, batch 32, names.txt); the table shows the median steps/s over
the rounds (compile time apart) and how many times faster jaxninja's loop (a) is:

    (a)  jaxninja: step.train_chunk, the manual backward in a lax.scan chunk (as train.py runs it)
    (b)  jax.grad under jit + lax.scan, each step drawing its batch inside the scan
    (b2) jax.grad under jit + lax.scan with (a)'s batch pipeline: isolates manual vs autodiff
    (c)  jax.grad jitted per step, driven from a Python loop
    (d)  torch eager, loss.backward()
    (e)  the notebook's loop: chunked forward, Exercise 1's chunked manual backward, Python dC loop
    (m)  the step's six matmuls alone in a scan: the floor for anything XLA compiles at these shapes

plus the arithmetic limit: matmul FLOPs per step over a measured matmul GFLOP/s. torch runs with
one thread (``--torch-threads``): on 2 shared cores a second OpenMP thread made (d) ~10x slower.
The CPU µs/step column is process CPU time per step; on a busy machine it is steadier than wall
time, and 1e6 / (CPU µs/step) is roughly the rate a single-threaded loop reaches on an idle core.

``--runs 1,2,4,8,16,64`` adds a second table: K runs of the lecture's model in one program
(``stacked.runs_chunk``, the runs' axis over one CPU device per core, one run at a time per
device) against the same K runs trained one after another with ``step.train_chunk`` in this
process, and the same program with every device's runs vmapped (``--group``'s GPU layout)::

    JAX_PLATFORMS=cpu python -m benchmarks.train_speed --runs 1,2,4,8,16,64 --runs-only
    python -m benchmarks.train_speed --device gpu --no-torch --runs 1,16,256,1024   # on a GPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.config import TrainConfig
from jaxninja.data import load_dataset
from jaxninja.lecture.model import BN_EPS, Params, init_params, loss_fused
from jaxninja.lecture.step import Schedule, batch_indices, chunk_indices, learning_rate, train_chunk
from jaxninja.training import stacked
from jaxninja.training.loop import start_state

SCHEDULE = Schedule()
N_EMBD, N_HIDDEN, BLOCK, BATCH = 10, 200, 3, 32


class Loop(NamedTuple):
    """A training loop under test: ``run(n)`` does n more SGD steps and waits for them."""

    label: str
    what: str
    run: Callable[[int], None]
    steps: int  # steps per round
    compile_s: float | None  # wall time of the first (compiling) call; None if nothing compiles


def first_call(fn: Callable[[], object]) -> float:
    """Wall time of a call that compiles (the warm-up)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


# ---------------------------------------------------------------- JAX loops


def jaxninja_loop(params: Params, key, x, y, chunk: int, steps: int) -> Loop:
    """(a) step.train_chunk chunk after chunk, pulling each chunk's losses to the host like
    train.py does."""
    state = {"p": params, "s": 0}

    def run(n: int) -> None:
        for _ in range(n // chunk):
            state["p"], losses = train_chunk(
                state["p"], key, np.int32(state["s"]), x, y, chunk, BATCH, SCHEDULE
            )
            np.asarray(losses)
            state["s"] += chunk

    compile_s = first_call(
        lambda: train_chunk(params, key, np.int32(0), x, y, chunk, BATCH, SCHEDULE)
    )
    return Loop(
        "(a)",
        f"jaxninja `step.train_chunk` (manual backward, scan chunks of {chunk})",
        run,
        steps,
        compile_s,
    )


def autodiff_step(p: Params, batch):
    """One SGD step with jax.grad of the fused loss."""
    xb, yb, lr = batch
    loss, grads = jax.value_and_grad(loss_fused)(p, xb, yb)
    return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss


@partial(jax.jit, static_argnames=("n_steps",))
def autodiff_chunk_inline(params, key, step0, x, y, n_steps: int):
    """(b) the plain JAX idiom: batch drawn and gathered inside each scan iteration."""

    def one(p, step):
        ix = batch_indices(key, step, BATCH, x.shape[0])
        lr = learning_rate(SCHEDULE, step).astype(p.W1.dtype)
        return autodiff_step(p, (x[ix], y[ix], lr))

    return jax.lax.scan(one, params, step0 + jnp.arange(n_steps))


@partial(jax.jit, static_argnames=("n_steps",))
def autodiff_chunk_predrawn(params, key, step0, x, y, n_steps: int):
    """(b2) jax.grad with train_chunk's pipeline: the chunk's batches drawn before the scan."""
    steps = step0 + jnp.arange(n_steps)
    ix = chunk_indices(key, steps, BATCH, x.shape[0])
    lrs = learning_rate(SCHEDULE, steps).astype(params.W1.dtype)
    return jax.lax.scan(autodiff_step, params, (x[ix], y[ix], lrs))


def autodiff_scan_loop(label, what, chunk_fn, params, key, x, y, chunk, steps) -> Loop:
    state = {"p": params, "s": 0}

    def run(n: int) -> None:
        for _ in range(n // chunk):
            state["p"], losses = chunk_fn(state["p"], key, np.int32(state["s"]), x, y, chunk)
            np.asarray(losses)
            state["s"] += chunk

    compile_s = first_call(lambda: chunk_fn(params, key, np.int32(0), x, y, chunk))
    return Loop(label, what, run, steps, compile_s)


@jax.jit
def autodiff_one_step(p, key, step, x, y):
    """(c) one jitted SGD step: draw the batch, jax.grad, update."""
    ix = batch_indices(key, step, BATCH, x.shape[0])
    lr = learning_rate(SCHEDULE, step).astype(p.W1.dtype)
    return autodiff_step(p, (x[ix], y[ix], lr))


def python_loop(params, key, x, y, steps) -> Loop:
    state = {"p": params, "s": 0}

    def run(n: int) -> None:
        p, s = state["p"], state["s"]
        for i in range(s, s + n):
            p, loss = autodiff_one_step(p, key, np.int32(i), x, y)
        jax.block_until_ready(p)
        state["p"], state["s"] = p, s + n

    compile_s = first_call(lambda: autodiff_one_step(params, key, np.int32(0), x, y))
    return Loop("(c)", "`jax.grad` jitted per step, Python loop", run, steps, compile_s)


# ---------------------------------------------------------------- torch loops


def torch_params(torch, vocab_size: int, seed: int):
    """The notebook's initialisation (torch generator 2147483647 by default), and the generator
    the loop goes on drawing its batches from."""
    import torch_ref

    g = torch.Generator().manual_seed(seed)
    params = torch_ref.init_params(seed, vocab_size, N_EMBD, N_HIDDEN, BLOCK, generator=g)
    return list(params.values()), g


def torch_autograd_loop(torch, xt, yt, vocab_size, steps) -> Loop:
    """(d) the lecture's training loop with loss.backward()."""
    F = torch.nn.functional
    parameters, g = torch_params(torch, vocab_size, 2147483647)
    for p in parameters:
        p.requires_grad = True
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    state = {"s": 0}

    def run(n: int) -> None:
        for i in range(state["s"], state["s"] + n):
            ix = torch.randint(0, xt.shape[0], (BATCH,), generator=g)
            xb, yb = xt[ix], yt[ix]
            emb = C[xb]
            embcat = emb.view(emb.shape[0], -1)
            hprebn = embcat @ W1 + b1
            bnmean = hprebn.mean(0, keepdim=True)
            bnvar = hprebn.var(0, keepdim=True, unbiased=True)
            bnraw = (hprebn - bnmean) * (bnvar + BN_EPS) ** -0.5
            h = torch.tanh(bngain * bnraw + bnbias)
            loss = F.cross_entropy(h @ W2 + b2, yb)
            for p in parameters:
                p.grad = None
            loss.backward()
            lr = SCHEDULE.lr if i < SCHEDULE.decay_step else SCHEDULE.lr * SCHEDULE.decay
            with torch.no_grad():
                for p in parameters:
                    p -= lr * p.grad
        state["s"] += n

    return Loop("(d)", "torch eager, `loss.backward()`", run, steps, None)


def torch_notebook_loop(torch, xt, yt, vocab_size, steps) -> Loop:
    """(e) the notebook's Exercise 1 forward and chunked manual backward, as a training loop."""
    import torch_ref

    parameters, g = torch_params(torch, vocab_size, 2147483647)
    p = dict(zip(torch_ref.reference.PARAMS, parameters, strict=True))
    n = BATCH
    state = {"s": 0}

    def step(i: int) -> None:
        ix = torch.randint(0, xt.shape[0], (n,), generator=g)
        fwd = torch_ref.forward(p, xt[ix], yt[ix])  # the notebook's chunked forward
        # Exercise 1 line by line, the literal tanh line and the notebook's Python dC loop
        grads = torch_ref.manual_backward(p, fwd, tanh="notebook", python_loop_dC=True)
        lr = SCHEDULE.lr if i < SCHEDULE.decay_step else SCHEDULE.lr * SCHEDULE.decay
        for name, param in p.items():
            param.data += -lr * grads[name]

    def run(k: int) -> None:
        with torch.no_grad():
            for i in range(state["s"], state["s"] + k):
                step(i)
        state["s"] += k

    return Loop(
        "(e)", "the notebook's loop: Exercise 1 manual backward, Python `dC` loop", run, steps, None
    )


# ---------------------------------------------------------------- the arithmetic limit


def matmul_flops_per_step() -> int:
    """FLOPs of the six matmuls of one step: forward ``x @ W`` for both layers, and for each
    layer the backward ``dout @ W.T`` and ``x.T @ dout``: 3 x 2 x batch x (in x out)."""
    fan_in, vocab = N_EMBD * BLOCK, 27
    return 3 * 2 * BATCH * (fan_in * N_HIDDEN + N_HIDDEN * vocab)


def matmul_gflops(n: int = 512, repeats: int = 20) -> float:
    """Best-of-``repeats`` GFLOP/s of a jitted float32 ``n x n`` matmul (XLA's default threads)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


@partial(jax.jit, static_argnames=("n_steps",))
def six_matmuls(embcat, W1, W2, n_steps: int):
    """The step's six matmuls alone, chained through a scan: what is left with zero elementwise
    work, i.e. the cost XLA pays just to call matmuls of these shapes."""

    def one(carry, _):
        W1, W2 = carry
        h = embcat @ W1  # (32, 200)
        logits = h @ W2  # (32, 27)
        dh = logits @ W2.T
        dW2 = h.T @ logits
        dembcat = dh @ W1.T
        dW1 = embcat.T @ dh
        return (W1 - 1e-9 * dW1 - 1e-9 * dembcat[:1, :1], W2 - 1e-9 * dW2), None

    return jax.lax.scan(one, (W1, W2), None, length=n_steps)[0]


def six_matmuls_loop(steps: int, chunk: int) -> Loop:
    rng = np.random.default_rng(0)
    embcat = jnp.asarray(rng.standard_normal((BATCH, N_EMBD * BLOCK)), jnp.float32)
    W1 = jnp.asarray(rng.standard_normal((N_EMBD * BLOCK, N_HIDDEN)), jnp.float32) * 0.1
    W2 = jnp.asarray(rng.standard_normal((N_HIDDEN, 27)), jnp.float32) * 0.1

    def run(n: int) -> None:
        for _ in range(n // chunk):
            jax.block_until_ready(six_matmuls(embcat, W1, W2, chunk))

    compile_s = first_call(lambda: six_matmuls(embcat, W1, W2, chunk))
    return Loop(
        "(m)",
        "the six matmuls alone in a scan (no elementwise work, no update)",
        run,
        steps,
        compile_s,
    )


# ---------------------------------------------------------------- K runs in one program


def runs_loops(
    k: int, vocab: int, x, y, chunk: int, steps: int, platform: str, sequential: bool
) -> list[Loop]:
    """K lecture runs (seeds 0..K-1): one program (the default layout), K sequential single
    runs (if ``sequential``), and one program with each device's runs vmapped (unless that is
    the default layout already). ``steps`` is run-steps per round."""
    configs = [TrainConfig(seed=s, steps=10**9) for s in range(k)]
    states = [start_state(c, vocab) for c in configs]
    per_run = steps // k // chunk * chunk or chunk
    loops = []
    default = stacked.make_layout(k, platform)
    layouts = [(f"K={k} one program", default)]
    vmapped = stacked.make_layout(k, platform, group=default.padded)
    if vmapped.group != default.group:
        layouts.append((f"K={k} vmapped", vmapped))
    for label, layout in layouts:
        params, keys, sched, (xd, yd) = stacked.place_runs(configs, states, layout, (x, y))
        state = {"p": params, "s": 0}

        def chunk_call(p, s, keys=keys, sched=sched, xd=xd, yd=yd, layout=layout):
            args = (p, keys, *sched, np.int32(s), xd, yd, chunk, BATCH, layout.mesh, layout.group)
            return stacked.runs_chunk(*args)

        def run(n: int, state=state, chunk_call=chunk_call) -> None:
            for _ in range(n // k // chunk):
                state["p"], losses = chunk_call(state["p"], state["s"])
                np.asarray(losses)
                state["s"] += chunk

        compile_s = first_call(lambda chunk_call=chunk_call, params=params: chunk_call(params, 0))
        loops.append(Loop(label, layout.describe(k), run, per_run * k, compile_s))
    if not sequential:
        return loops
    seq = {"p": [s.params for s in states], "s": 0}

    def run_sequential(n: int) -> None:
        for _ in range(n // k // chunk):
            for i, s in enumerate(states):
                seq["p"][i], losses = train_chunk(
                    seq["p"][i], s.batch_key, np.int32(seq["s"]), x, y, chunk, BATCH, SCHEDULE
                )
                np.asarray(losses)
            seq["s"] += chunk

    s0 = states[0]
    compile_s = first_call(
        lambda: train_chunk(s0.params, s0.batch_key, np.int32(0), x, y, chunk, BATCH, SCHEDULE)
    )
    what = f"{k} x `step.train_chunk`"
    loops.insert(1, Loop(f"K={k} sequential", what, run_sequential, per_run * k, compile_s))
    return loops


def runs_table(ks, loops_of, rates, cpu_us) -> str:
    """One row per K: run-steps/s of the program, of K sequential runs, their same-round ratio,
    the vmapped program, CPU µs per run-step and how many cores the program kept busy. A K
    whose sequential runs were not measured (``--runs-sequential-max``) is compared with the
    largest K that was: sequential runs do not get faster with K."""
    lines = [
        "| K | layout | one program run-steps/s | K sequential | ratio | vmapped | "
        "CPU µs/run-step program / sequential / vmapped | cores busy | first call s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    measured = [k for k in ks if f"K={k} sequential" in rates]
    for k in ks:
        one, vm = f"K={k} one program", f"K={k} vmapped"
        ks_seq = k if k in measured else max((m for m in measured if m < k), default=None)
        seq = None if ks_seq is None else f"K={ks_seq} sequential"
        cpu = {lab: statistics.median(cpu_us[lab]) for lab in (one, vm, seq) if lab in rates}
        med = {lab: statistics.median(rates[lab]) for lab in (one, vm, seq) if lab in rates}
        if seq is None:
            seq_text, ratio = "–", "–"
        elif ks_seq == k:
            seq_text, ratio = f"{med[seq]:,.0f}", f"{same_round_ratio(rates[one], rates[seq]):.2f}"
        else:
            seq_text, ratio = f"{med[seq]:,.0f} (K={ks_seq}'s)", f"{med[one] / med[seq]:.2f}"
        vm_text = f"{med[vm]:,.0f}" if vm in med else "= one program"
        cpu_text = " / ".join(f"{cpu[lab]:.0f}" if lab in cpu else "–" for lab in (one, seq, vm))
        busy = med[one] * cpu[one] / 1e6
        loop = loops_of[one]
        lines.append(
            f"| {k} | {loop.what} | {med[one]:,.0f} | {seq_text} | {ratio} | {vm_text} "
            f"| {cpu_text} | {busy:.1f} | {loop.compile_s:.1f} |"
        )
    return "\n".join(lines)


def run_rows(args, ds, x, y, platform: str) -> tuple[str, dict]:
    """The K-runs table and its JSON."""
    loops: list[Loop] = []
    for k in args.runs:
        sequential = k <= args.runs_sequential_max
        loops += runs_loops(
            k, ds.vocab.size, x, y, args.chunk, args.runs_steps, platform, sequential
        )
    rates, cpu_us = measure(loops, args.runs_rounds)
    text = runs_table(args.runs, {loop.label: loop for loop in loops}, rates, cpu_us)
    data = {
        loop.label: {
            "what": loop.what,
            "run_steps_per_s": rates[loop.label],
            "median": statistics.median(rates[loop.label]),
            "cpu_us_per_run_step": cpu_us[loop.label],
            "compile_s": loop.compile_s,
        }
        for loop in loops
    }
    return text, data


# ---------------------------------------------------------------- driver


def warm_up() -> None:
    """Compile one small scan first, so that no loop's compile time carries XLA's one-time
    start-up (about a second here)."""
    embcat, W1 = jnp.ones((BATCH, N_EMBD * BLOCK)), jnp.ones((N_EMBD * BLOCK, N_HIDDEN))
    jax.block_until_ready(six_matmuls(embcat, W1, jnp.ones((N_HIDDEN, 27)), 2))


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    loops: list[Loop], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Steps/s and CPU microseconds per step of each loop per round; loops interleave, the order
    rotating every round. On a shared machine the CPU time per step is the steadier figure: a
    loop that is descheduled loses wall time but not CPU time."""
    rates: dict[str, list[float]] = {loop.label: [] for loop in loops}
    cpu_us: dict[str, list[float]] = {loop.label: [] for loop in loops}
    for r in range(rounds):
        order = loops[r % len(loops) :] + loops[: r % len(loops)]
        for loop in order:
            t0, c0 = time.perf_counter(), cpu_seconds()
            loop.run(loop.steps)
            rates[loop.label].append(loop.steps / (time.perf_counter() - t0))
            cpu_us[loop.label].append((cpu_seconds() - c0) / loop.steps * 1e6)
        print(
            f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()),
            flush=True,
        )
    return rates, cpu_us


def same_round_ratio(a: list[float], other: list[float]) -> float:
    """Median over rounds of a[r] / other[r]."""
    return statistics.median(x / y for x, y in zip(a, other, strict=True))


def table(
    loops: list[Loop],
    rates: dict[str, list[float]],
    cpu_us: dict[str, list[float]],
    limit: float,
    gflops: float,
    flops: int,
) -> str:
    """The markdown table. "(a) is × faster" is the median over rounds of (a)'s rate over the
    loop's rate in the same round, which cancels most of the drift of a shared machine's load."""
    a = statistics.median(rates["(a)"])
    lines = [
        "| loop | steps/s (median) | min – max | (a) is × faster | CPU µs/step | compile s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for loop in loops:
        r = rates[loop.label]
        med = statistics.median(r)
        comp = "–" if loop.compile_s is None else f"{loop.compile_s:.1f}"
        lines.append(
            f"| {loop.label} {loop.what} | {med:,.0f} | {min(r):,.0f} – {max(r):,.0f} "
            f"| {same_round_ratio(rates['(a)'], r):.2f} "
            f"| {statistics.median(cpu_us[loop.label]):,.0f} | {comp} |"
        )
    lines.append(
        f"| arithmetic limit: {flops / 1e6:.2f} MFLOP/step of matmuls at "
        f"{gflops:.0f} GFLOP/s (512² matmul, best of 20) | {limit:,.0f} | | {a / limit:.2f} | | |"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="word list (default: names.txt as train does)")
    p.add_argument(
        "--rounds", type=int, default=11, help="rounds (many short ones: steadier medians)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=4_000,
        help="steps per round of the scan loops (a), (b), (b2), (m)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=1_000,
        help="steps per compiled scan dispatch (train.py's CHUNK_STEPS is 1,000)",
    )
    p.add_argument(
        "--python-steps",
        type=int,
        default=500,
        help="steps per round of the per-step loops (c) and (d)",
    )
    p.add_argument(
        "--notebook-steps",
        type=int,
        default=100,
        help="steps per round of the notebook loop (e), whose dC loop is slow",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads for (d) and (e); 1 is fastest for these tiny ops",
    )
    p.add_argument("--no-torch", action="store_true", help="skip (d) and (e)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    p.add_argument(
        "--runs",
        default="",
        metavar="K,K,...",
        help="also the table of K runs in one program vs K sequential runs (e.g. 1,2,4,8,16,64)",
    )
    p.add_argument(
        "--runs-steps",
        type=int,
        default=16_000,
        help="run-steps per round of each K row (K runs x steps/K each, whole chunks)",
    )
    p.add_argument("--runs-rounds", type=int, default=3, help="rounds of the K rows")
    p.add_argument(
        "--runs-sequential-max",
        type=int,
        default=64,
        help="measure K sequential runs up to this K (beyond, the largest measured K's rate)",
    )
    p.add_argument("--runs-only", action="store_true", help="only the K rows (skip loops (a)..(m))")
    p.add_argument(
        "--device",
        default="auto",
        help="cpu or gpu: where every loop runs (default: JAX's default device)",
    )
    args = p.parse_args(argv)
    try:
        args.runs = [int(k) for k in args.runs.split(",") if k.strip()]
    except ValueError:
        p.error(f"--runs {args.runs!r}: expected K,K,... (integers)")
    if any(k < 1 for k in args.runs):
        p.error("--runs: every K must be >= 1")
    for name in ("rounds", "steps", "chunk", "python_steps", "notebook_steps", "torch_threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.steps % args.chunk:
        p.error(f"--steps {args.steps} must be a multiple of --chunk {args.chunk}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs and args.device in ("auto", "cpu"):
        from jaxninja._cli.hostdevices import cores

        jax.config.update("jax_num_cpu_devices", cores())  # before jax starts its CPU backend
    if args.device != "auto":
        from jaxninja.checks import resolve_device

        jax.config.update("jax_default_device", resolve_device(args.device))
    where = jax.devices()[0].platform if args.device == "auto" else args.device
    ds = load_dataset(args.data, BLOCK)
    x, y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    key = jax.random.key(42)
    params = init_params(jax.random.key(0), ds.vocab.size, N_EMBD, N_HIDDEN, BLOCK)
    machine = (
        f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}"
    ).replace("  ", " ")
    print(f"data {ds.source}: {x.shape[0]:,} training contexts; {machine}", flush=True)

    load0 = os.getloadavg()[0]
    warm_up()
    out: dict = {
        "date": str(datetime.date.today()),
        "machine": machine,
        "args": vars(args),
    }
    if not args.runs_only:
        out |= single_run_table(args, ds, params, key, x, y)
    if args.runs:
        text, out["runs"] = run_rows(args, ds, x, y, where)
        devices = len(jax.devices(where))
        print(f"\nK runs in one program ({devices} {where} device(s), {args.runs_rounds} rounds, "
              f"{args.runs_steps:,} run-steps per row and round):\n")  # fmt: skip
        print(text)
    load = f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    print(f"\n{datetime.date.today()}, {machine}, {load}")
    out["load_average"] = [load0, os.getloadavg()[0]]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def single_run_table(args, ds, params, key, x, y) -> dict:
    """Loops (a) .. (m) side by side: today's table, printed; its JSON returned."""
    loops = [
        jaxninja_loop(params, key, x, y, args.chunk, args.steps),
        autodiff_scan_loop(
            "(b)",
            "`jax.grad` under `jit` + `lax.scan`, batch drawn in the scan",
            autodiff_chunk_inline,
            params,
            key,
            x,
            y,
            args.chunk,
            args.steps,
        ),
        autodiff_scan_loop(
            "(b2)",
            "`jax.grad` under `jit` + `lax.scan`, (a)'s batch pipeline",
            autodiff_chunk_predrawn,
            params,
            key,
            x,
            y,
            args.chunk,
            args.steps,
        ),
        python_loop(params, key, x, y, args.python_steps),
    ]
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.torch_threads)
        xt, yt = torch.from_numpy(ds.train.x).long(), torch.from_numpy(ds.train.y).long()
        loops += [
            torch_autograd_loop(torch, xt, yt, ds.vocab.size, args.python_steps),
            torch_notebook_loop(torch, xt, yt, ds.vocab.size, args.notebook_steps),
        ]
    loops.append(six_matmuls_loop(args.steps, args.chunk))
    rates, cpu_us = measure(loops, args.rounds)

    flops, gflops = matmul_flops_per_step(), matmul_gflops()
    limit = gflops * 1e9 / flops
    print()
    print(table(loops, rates, cpu_us, limit, gflops, flops))
    torch_note = "no torch" if args.no_torch else f"torch {args.torch_threads} thread(s)"
    print(f"\n{torch_note}, {args.rounds} rounds")
    return {
        "matmul_gflops": gflops,
        "flops_per_step": flops,
        "arithmetic_limit": limit,
        "loops": {
            loop.label: {
                "what": loop.what,
                "steps_per_s": rates[loop.label],
                "median": statistics.median(rates[loop.label]),
                "a_is_x_faster": same_round_ratio(rates["(a)"], rates[loop.label]),
                "cpu_us_per_step": cpu_us[loop.label],
                "compile_s": loop.compile_s,
            }
            for loop in loops
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
