"""Training speed of makemore part 5's WaveNet, side by side in one process (not a test).

    JAX_PLATFORMS=cpu python -m benchmarks.wavenet_train                 # ~1 minute on 2 cores
    JAX_PLATFORMS=cpu python -m benchmarks.wavenet_train --rounds 9 --json wavenet.json
    JAX_PLATFORMS=cpu python -m benchmarks.wavenet_train --sanity 5000   # the loss falls

The model is ``examples/models/wavenet.py:part5`` (n_embd 24, n_hidden 128, 76,579 parameters,
block 8, batch 32, names.txt). Each round runs every loop for a fixed number of SGD steps, the
order rotating from round to round; the table shows the median steps/s over the rounds (compile
time apart) and the median over rounds of (a)'s rate over each loop's rate in the same round:

    (a) the model file's manual backward in a jitted ``lax.scan`` of SGD steps (chunks of 1,000:
        the chunk's batches and learning rates drawn up front, as jaxninja's training does),
        with part 5's running BatchNorm statistics updated every step (``stats_update``)
    (b) the same scan with ``jax.grad`` of the same forward instead of the manual backward
    (c) torch eager training as the lecture does it: its Embedding / FlattenConsecutive /
        Linear / BatchNorm1d / Tanh layers (re-written here in a few lines), ``loss.backward()``,
        the running statistics updated under ``torch.no_grad``; ``--torch-threads`` threads
    (m) the matmul-only floor: the step's twelve matmuls at these shapes (four forward, and per
        layer ``dX = dY W^T`` and ``dW = X^T dY``) chained through a scan, nothing else

(a)/(b) is the price (or the gain) of the hand-written backward over XLA's autodiff of the
same forward; (a)/(m) how far the step is from the matmuls it cannot avoid. The CPU µs/step
column is process CPU time per step, steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja.data import load_dataset
from jaxninja.lecture.step import Schedule
from jaxninja.models.protocol import recorded
from jaxninja.models.trainable import file_trainable
from jaxninja.training.chunk import train_chunk

WAVENET = Path(__file__).resolve().parent.parent / "examples" / "models" / "wavenet.py"
BLOCK, BATCH = 8, 32
SCHEDULE = Schedule(lr=0.1, decay_step=150_000, decay=0.1)  # part 5's


class Loop(NamedTuple):
    """A training loop under test: ``run(n)`` does n more SGD steps and waits for them."""

    label: str
    what: str
    run: Callable[[int], None]
    steps: int  # steps per round
    compile_s: float | None  # wall time of the first (compiling) call; None if nothing compiles


def load_wavenet() -> ModuleType:
    """examples/models/wavenet.py as a module (its ``part5`` variant is an attribute)."""
    spec = importlib.util.spec_from_file_location("wavenet_benchmark", WAVENET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_call(fn: Callable[[], object]) -> float:
    """Wall time of a call that compiles (the warm-up)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


# -------------------------------------------------- (a) and (b): one scan, two backwards


def manual_step(model):
    """(a): the step ``jaxninja train --model wavenet.py:part5`` runs, its Trainable's own
    (:func:`jaxninja.models.trainable.file_trainable`): forward with taps, the file's backward,
    the running statistics."""
    return file_trainable(f"{WAVENET}:part5").step


def autodiff_step(model):
    """(b): ``jax.grad`` of the same forward in place of the file's backward, the same running
    statistics, as a Trainable step."""

    def step(params, stats, xb, yb):
        (loss, acts), grads = jax.value_and_grad(
            lambda p: recorded(model.forward, p, (xb, yb)), has_aux=True
        )(params)
        return loss, grads, model.stats_update(stats, acts)

    return step


def scan_loop(label, what, model, step_fn, params, key, x, y, chunk, steps) -> Loop:
    """A Loop over jaxninja's own training chunk (:func:`jaxninja.training.chunk.train_chunk`,
    what ``jaxninja train`` runs), pulling each chunk's losses to the host as a trainer does (a
    progress bar needs them)."""
    state = {"c": (params, model.stats_init(params)), "s": 0}

    def call(carry, s):
        p, st, losses = train_chunk(step_fn, *carry, key, np.int32(s), x, y, chunk, BATCH, SCHEDULE)
        return (p, st), losses

    def run(n: int) -> None:
        for _ in range(n // chunk):
            state["c"], losses = call(state["c"], state["s"])
            np.asarray(losses)
            state["s"] += chunk

    compile_s = first_call(lambda: call(state["c"], 0))
    return Loop(label, what, run, steps, compile_s)


# -------------------------------------------------- (c) torch eager, the lecture's way


def torch_part5(torch, vocab: int, n_embd: int, n_hidden: int, seed: int):
    """Part 5's network in torch eager: its layer classes' behaviour, written out briefly.
    Returns ``(model, parameters, generator)``; ``model(x)``: the logits, training mode."""
    g = torch.Generator().manual_seed(seed)

    class Linear:
        def __init__(self, fan_in: int, fan_out: int, bias: bool = True):
            self.weight = torch.randn((fan_in, fan_out), generator=g) / fan_in**0.5
            self.bias = torch.zeros(fan_out) if bias else None

        def __call__(self, x):
            out = x @ self.weight
            return out if self.bias is None else out + self.bias

        def parameters(self):
            return [self.weight] + ([] if self.bias is None else [self.bias])

    class BatchNorm1d:
        def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1):
            self.eps, self.momentum = eps, momentum
            self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
            self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)
            self.training = True

        def __call__(self, x):
            if not self.training:
                xmean, xvar = self.running_mean, self.running_var
                return self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta
            dims = 0 if x.ndim == 2 else (0, 1)
            xmean, xvar = x.mean(dims, keepdim=True), x.var(dims, keepdim=True)  # Bessel
            out = self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta
            with torch.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * xmean
                self.running_var = (1 - m) * self.running_var + m * xvar
            return out

        def parameters(self):
            return [self.gamma, self.beta]

    class Tanh:
        def __call__(self, x):
            return torch.tanh(x)

        def parameters(self):
            return []

    class Embedding:
        def __init__(self, n: int, dim: int):
            self.weight = torch.randn((n, dim), generator=g)

        def __call__(self, ix):
            return self.weight[ix]

        def parameters(self):
            return [self.weight]

    class FlattenConsecutive:
        def __init__(self, n: int):
            self.n = n

        def __call__(self, x):
            b, t, c = x.shape
            x = x.view(b, t // self.n, c * self.n)
            return x.squeeze(1) if x.shape[1] == 1 else x

        def parameters(self):
            return []

    layers = [Embedding(vocab, n_embd)]
    fan_in = n_embd
    for _ in range(3):
        layers += [FlattenConsecutive(2), Linear(2 * fan_in, n_hidden, bias=False)]
        layers += [BatchNorm1d(n_hidden), Tanh()]
        fan_in = n_hidden
    layers.append(Linear(n_hidden, vocab))
    with torch.no_grad():
        layers[-1].weight *= 0.1
    parameters = [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True

    def model(x, training: bool = True):
        for layer in layers:
            layer.training = training
            x = layer(x)
        return x

    return model, parameters, g


def torch_loop(
    torch, xt, yt, vocab: int, seed: int, steps: int, record: dict | None = None
) -> Loop:
    """(c) the lecture's training loop: a random batch, the forward, ``loss.backward()``,
    ``p.data += -lr * p.grad``. ``record`` (the sanity run's) receives the model and each
    step's loss; the timed loop leaves ``loss.item()`` out."""
    F = torch.nn.functional
    model, parameters, g = torch_part5(torch, vocab, 24, 128, seed)
    assert sum(p.numel() for p in parameters) == 76_579
    state = {"s": 0}
    if record is not None:
        record |= {"model": model, "losses": []}

    def run(n: int) -> None:
        for i in range(state["s"], state["s"] + n):
            ix = torch.randint(0, xt.shape[0], (BATCH,), generator=g)
            loss = F.cross_entropy(model(xt[ix]), yt[ix])
            for p in parameters:
                p.grad = None
            loss.backward()
            lr = SCHEDULE.lr if i < SCHEDULE.decay_step else SCHEDULE.lr * SCHEDULE.decay
            for p in parameters:
                p.data += -lr * p.grad
            if record is not None:
                record["losses"].append(loss.item())
        state["s"] += n

    return Loop("(c)", "torch eager, the lecture's layers and `loss.backward()`", run, steps, None)


# ---------------------------------------------------------------- (m) the matmul-only floor


def matmul_shapes(n_embd: int, n_hidden: int, vocab: int) -> list[tuple[int, int, int]]:
    """``(rows, fan_in, fan_out)`` of the step's four forward matmuls: the three Linears see
    B*4, B*2 and B rows (FlattenConsecutive), the output layer B."""
    return [
        (BATCH * 4, 2 * n_embd, n_hidden),
        (BATCH * 2, 2 * n_hidden, n_hidden),
        (BATCH, 2 * n_hidden, n_hidden),
        (BATCH, n_hidden, vocab),
    ]


def matmul_flops_per_step(n_embd: int, n_hidden: int, vocab: int) -> int:
    """FLOPs of the twelve matmuls: 3 matmuls x 2 flops x rows x fan_in x fan_out per layer."""
    return sum(6 * r * i * o for r, i, o in matmul_shapes(n_embd, n_hidden, vocab))


@partial(jax.jit, static_argnames=("n_steps",))
def twelve_matmuls(flat1, Ws, n_steps: int):
    """The step's matmuls alone, chained through a scan (each iteration's inputs depend on the
    last one's outputs, so none is hoisted or skipped): the forward's four ``X @ W`` and, per
    layer, ``dY @ W.T`` and ``X.T @ dY``, with the reshapes FlattenConsecutive does between
    layers, and nothing else but a tiny update to keep the chain."""

    def one(carry, _):
        flat1, (W1, W2, W3, Wo) = carry
        h1 = flat1 @ W1  # (B*4, 2E) @ (2E, H)
        f2 = h1.reshape(BATCH * 2, -1)
        h2 = f2 @ W2  # (B*2, 2H) @ (2H, H)
        f3 = h2.reshape(BATCH, -1)
        h3 = f3 @ W3  # (B, 2H) @ (2H, H)
        out = h3 @ Wo  # (B, H) @ (H, V)
        dWo, dh3 = h3.T @ out, out @ Wo.T
        dW3, df3 = f3.T @ dh3, dh3 @ W3.T
        dh2 = df3.reshape(BATCH * 2, -1)
        dW2, df2 = f2.T @ dh2, dh2 @ W2.T
        dh1 = df2.reshape(BATCH * 4, -1)
        dW1, dflat1 = flat1.T @ dh1, dh1 @ W1.T
        pairs = zip((W1, W2, W3, Wo), (dW1, dW2, dW3, dWo), strict=True)
        Ws = tuple(W - 1e-9 * dW for W, dW in pairs)
        return (flat1 - 1e-9 * dflat1, Ws), None

    return jax.lax.scan(one, (flat1, Ws), None, length=n_steps)[0]


def matmul_loop(n_embd: int, n_hidden: int, vocab: int, steps: int, chunk: int) -> Loop:
    rng = np.random.default_rng(0)
    shapes = matmul_shapes(n_embd, n_hidden, vocab)
    flat1 = jnp.asarray(rng.standard_normal(shapes[0][:2]), jnp.float32)
    Ws = tuple(
        jnp.asarray(rng.standard_normal((i, o)) / math.sqrt(i), jnp.float32) for _, i, o in shapes
    )

    def run(n: int) -> None:
        for _ in range(n // chunk):
            jax.block_until_ready(twelve_matmuls(flat1, Ws, chunk))

    compile_s = first_call(lambda: twelve_matmuls(flat1, Ws, chunk))
    what = "the twelve matmuls alone in a scan (no elementwise work but a tiny update)"
    return Loop("(m)", what, run, steps, compile_s)


# ---------------------------------------------------------------- measuring


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(loops: list[Loop], rounds: int) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Steps/s and CPU µs per step of each loop per round; loops interleave, the order rotating
    every round, so that a shared machine's load drifts over all of them alike."""
    rates: dict[str, list[float]] = {loop.label: [] for loop in loops}
    cpu_us: dict[str, list[float]] = {loop.label: [] for loop in loops}
    for r in range(rounds):
        for loop in loops[r % len(loops) :] + loops[: r % len(loops)]:
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


def table(loops: list[Loop], rates, cpu_us, limit: float, gflops: float, flops: int) -> str:
    """The markdown table; "(a) / loop" is the median of same-round ratios."""
    lines = [
        "| loop | steps/s (median) | min – max | (a) / loop | CPU µs/step | compile s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for loop in loops:
        r = rates[loop.label]
        comp = "–" if loop.compile_s is None else f"{loop.compile_s:.1f}"
        lines.append(
            f"| {loop.label} {loop.what} | {statistics.median(r):,.0f} "
            f"| {min(r):,.0f} – {max(r):,.0f} | {same_round_ratio(rates['(a)'], r):.2f} "
            f"| {statistics.median(cpu_us[loop.label]):,.0f} | {comp} |"
        )
    a = statistics.median(rates["(a)"])
    lines.append(
        f"| arithmetic limit: {flops / 1e6:.2f} MFLOP/step of matmuls at {gflops:.0f} GFLOP/s "
        f"(512² matmul, best of 20) | {limit:,.0f} | | {a / limit:.2f} | | |"
    )
    return "\n".join(lines)


def matmul_gflops(n: int = 512, repeats: int = 20) -> float:
    """Best-of-``repeats`` GFLOP/s of a jitted float32 ``n x n`` matmul."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------- the compiled loop bodies


def loop_body_ops(hlo_text: str) -> dict[str, int]:
    """Instruction counts of the largest ``while`` body in a compiled HLO module (the scan's
    step): all instructions, fusions, stand-alone dots."""
    computations = re.split(r"\n(?=\S)", hlo_text)
    best: dict[str, int] = {"instructions": 0, "fusions": 0, "dots": 0}
    for name in set(re.findall(r"body=%?([\w.\-]+)", hlo_text)):
        for comp in computations:
            if not re.match(rf"^%?{re.escape(name)}[\s(]", comp):
                continue
            kinds = re.findall(r"^\s*(?:ROOT )?%?[\w.\-]+ = [^=]*?\b([a-z][\w\-]*)\(", comp, re.M)
            if len(kinds) > best["instructions"]:
                best = {
                    "instructions": len(kinds),
                    "fusions": kinds.count("fusion"),
                    "dots": kinds.count("dot"),
                }
    return best


def print_ops(model, params, key, x, y, chunk: int) -> dict[str, dict[str, int]]:
    """(a)'s and (b)'s compiled scan bodies, counted (:func:`loop_body_ops`)."""
    stats = model.stats_init(params)
    out = {}
    for label, fn in (("(a)", manual_step(model)), ("(b)", autodiff_step(model))):
        args = (fn, params, stats, key, np.int32(0), x, y, chunk, BATCH, SCHEDULE)
        out[label] = loop_body_ops(train_chunk.lower(*args).compile().as_text())
        counts = ", ".join(f"{v} {k}" for k, v in out[label].items())
        print(f"{label} compiled loop body: {counts}")
    return out


# ---------------------------------------------------------------- the sanity run


def split_loss(model, params, stats, x, y, piece: int = 20_000) -> float:
    """Mean cross entropy of a split from the model's eval logits (running statistics), in
    pieces (with running statistics each row depends on its own context only)."""
    logits = jax.jit(model.logits)
    total = 0.0
    for i in range(0, x.shape[0], piece):
        logp = jax.nn.log_softmax(logits(params, stats, x[i : i + piece]), axis=1)
        total += float(-jnp.take_along_axis(logp, y[i : i + piece, None], axis=1).sum())
    return total / x.shape[0]


def sanity(model, params, key, ds, steps: int, chunk: int) -> dict[str, Any]:
    """``steps`` steps of loop (a)'s code path from the init: each chunk's mean loss, then the
    train and val losses with the running statistics."""
    x, y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    carry = (params, model.stats_init(params))
    curve = []
    step_fn = manual_step(model)
    t0 = time.perf_counter()
    for s in range(0, steps, chunk):
        *carry, losses = train_chunk(
            step_fn, *carry, key, np.int32(s), x, y, chunk, BATCH, SCHEDULE
        )
        curve.append(float(np.mean(np.asarray(losses))))
        print(f"steps {s:>6,}-{s + chunk - 1:>6,}: mean minibatch loss {curve[-1]:.4f}", flush=True)
    wall = time.perf_counter() - t0
    params, stats = carry
    losses = {
        name: split_loss(model, params, stats, jnp.asarray(sp.x), jnp.asarray(sp.y))
        for name, sp in (("train", ds.train), ("val", ds.val))
    }
    print(f"after {steps:,} steps ({wall:.1f} s): train {losses['train']:.4f}, "
          f"val {losses['val']:.4f} (running statistics)")  # fmt: skip
    return {"steps": steps, "chunk_mean_loss": curve, "wall_s": wall, **losses}


def torch_sanity(ds, seed: int, steps: int, chunk: int) -> dict[str, Any]:
    """The same number of steps of loop (c), the lecture's torch training, for comparison
    (another random stream, so the curves agree statistically, not step for step)."""
    import torch

    xt, yt = torch.from_numpy(ds.train.x).long(), torch.from_numpy(ds.train.y).long()
    record: dict[str, Any] = {}
    loop = torch_loop(torch, xt, yt, ds.vocab.size, seed, chunk, record)
    t0 = time.perf_counter()
    for _ in range(steps // chunk):
        loop.run(chunk)
    wall = time.perf_counter() - t0
    all_losses = record["losses"]
    curve = [float(np.mean(all_losses[i : i + chunk])) for i in range(0, steps, chunk)]
    losses = {}
    with torch.no_grad():
        for name, sp in (("train", ds.train), ("val", ds.val)):
            logits = record["model"](torch.from_numpy(sp.x).long(), training=False)
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(sp.y).long())
            losses[name] = float(loss)
    print("torch eager, chunk means: " + ", ".join(f"{c:.4f}" for c in curve))
    print(f"torch after {steps:,} steps ({wall:.1f} s): train {losses['train']:.4f}, "
          f"val {losses['val']:.4f} (running statistics)")  # fmt: skip
    return {"steps": steps, "chunk_mean_loss": curve, "wall_s": wall, **losses}


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="word list (default: names.txt as train does)")
    p.add_argument("--rounds", type=int, default=7, help="rounds (the table shows medians)")
    p.add_argument("--steps", type=int, default=2_000, help="steps per round of (a), (b), (m)")
    p.add_argument("--chunk", type=int, default=1_000, help="steps per compiled scan dispatch")
    p.add_argument("--torch-steps", type=int, default=300, help="steps per round of (c)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads for (c): XLA runs these small ops on one thread too",
    )
    p.add_argument("--no-torch", action="store_true", help="skip (c)")
    p.add_argument("--seed", type=int, default=42, help="init and batch seed")
    p.add_argument(
        "--sanity",
        type=int,
        default=0,
        metavar="STEPS",
        help="instead of the table: train STEPS steps with (a)'s code and print the losses",
    )
    p.add_argument(
        "--ops",
        action="store_true",
        help="also count the instructions of (a)'s and (b)'s compiled loop bodies",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    args = p.parse_args(argv)
    for name in ("rounds", "steps", "chunk", "torch_steps", "torch_threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.sanity < 0:
        p.error("--sanity must be >= 0")
    if args.steps % args.chunk or args.sanity % args.chunk:
        p.error(f"--steps and --sanity must be multiples of --chunk {args.chunk}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wavenet = load_wavenet()
    model = wavenet.part5
    ds = load_dataset(args.data, BLOCK)
    vocab = ds.vocab.size
    x, y = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y)
    kinit, key = jax.random.split(jax.random.key(args.seed))
    params = jax.tree.map(jnp.asarray, model.init(kinit, vocab))
    n_params = sum(leaf.size for leaf in jax.tree.leaves(params))
    machine = (
        f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}"
    ).replace("  ", " ")
    print(f"data {ds.source}: {x.shape[0]:,} training contexts; {model!r}, {n_params:,} "
          f"parameters; {machine}", flush=True)  # fmt: skip
    load0 = os.getloadavg()[0]
    out: dict[str, Any] = {"date": str(datetime.date.today()), "machine": machine}
    out["args"] = vars(args)
    if args.sanity:
        out["sanity"] = sanity(model, params, key, ds, args.sanity, args.chunk)
        if not args.no_torch:
            import torch

            torch.set_num_threads(args.torch_threads)
            out["sanity_torch"] = torch_sanity(ds, args.seed, args.sanity, args.chunk)
    else:
        if args.ops:
            out["ops"] = print_ops(model, params, key, x, y, args.chunk)
        out |= speed_table(args, model, params, key, ds, x, y)
    load = f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    print(f"\n{datetime.date.today()}, {machine}, {load}")
    out["load_average"] = [load0, os.getloadavg()[0]]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def speed_table(args, model, params, key, ds, x, y) -> dict[str, Any]:
    """Loops (a), (b), (c), (m) side by side: the table, printed; its JSON returned."""
    chunk, steps = args.chunk, args.steps
    loops = [
        scan_loop(
            "(a)",
            f"manual backward (the model file's), jit + `lax.scan` chunks of {chunk}",
            model,
            manual_step(model),
            params,
            key,
            x,
            y,
            chunk,
            steps,
        ),
        scan_loop(
            "(b)",
            "`jax.grad` of the same forward, the same scan",
            model,
            autodiff_step(model),
            params,
            key,
            x,
            y,
            chunk,
            steps,
        ),
    ]
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.torch_threads)
        xt, yt = torch.from_numpy(ds.train.x).long(), torch.from_numpy(ds.train.y).long()
        loops.append(torch_loop(torch, xt, yt, ds.vocab.size, args.seed, args.torch_steps))
    loops.append(matmul_loop(model.n_embd, model.n_hidden, ds.vocab.size, steps, chunk))
    rates, cpu_us = measure(loops, args.rounds)
    flops = matmul_flops_per_step(model.n_embd, model.n_hidden, ds.vocab.size)
    gflops = matmul_gflops()
    limit = gflops * 1e9 / flops
    print()
    print(table(loops, rates, cpu_us, limit, gflops, flops))
    torch_note = "no torch" if args.no_torch else f"torch {args.torch_threads} thread(s)"
    ab = same_round_ratio(rates["(a)"], rates["(b)"])
    print(f"\n(a)/(b) = {ab:.2f} (median of same-round ratios); {torch_note}, {args.rounds} rounds")
    return {
        "a_over_b": ab,
        "matmul_gflops": gflops,
        "flops_per_step": flops,
        "arithmetic_limit": limit,
        "loops": {
            loop.label: {
                "what": loop.what,
                "steps_per_s": rates[loop.label],
                "median": statistics.median(rates[loop.label]),
                "a_over_loop": same_round_ratio(rates["(a)"], rates[loop.label]),
                "cpu_us_per_step": cpu_us[loop.label],
                "compile_s": loop.compile_s,
            }
            for loop in loops
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
