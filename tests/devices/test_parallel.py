"""Data parallelism (issue 6): the batch split over 4 devices gives the one-device maths.

JAX fixes its device count when it starts, so the 4-device work runs in ONE subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (this file's ``__main__``); it prints one
JSON line and the tests below assert on it. The same subprocess runs the deliberately wrong
per-shard BatchNorm (``tests/helpers.py``) through the same comparisons, so
the tests show that they catch it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxninja import numerics
from jaxninja.devices import parallel
from jaxninja.errors import ConfigError
from jaxninja.lecture.model import Params
from tests.helpers import (
    ROOT,
    loss_and_grads_per_shard_bn,
    names_setting,
    train_chunk_per_shard_bn,
)

N_DEVICES = 4
VOCAB, BLOCK, N_HIDDEN, N_TRAIN, BATCH = 27, 3, 64, 2000, 32
TRAIN_STEPS = 500
LOSS_RTOL = 1e-4  # the bound for float64; 4 vs 1 device differ by reduction order only


# ----------------------------------------------------------------------------- the subprocess


def _worker(parts: list[str]) -> dict:
    """The 4-device work (``parts``: float32 / float64 gradients, float64 training); returns
    plain numbers for the tests to judge."""
    from jaxninja.lecture import step

    jax.config.update("jax_enable_x64", True)  # this process only; float32 arrays stay float32
    mesh = parallel.make_mesh(N_DEVICES)
    rng = np.random.default_rng(0)
    params64 = numpy_params(rng)
    x = rng.integers(0, VOCAB, (N_TRAIN, BLOCK), dtype=np.int32)
    y = rng.integers(0, VOCAB, N_TRAIN, dtype=np.int32)
    xb, yb = x[:BATCH], y[:BATCH]
    out: dict = {"devices": len(jax.devices())}

    for dtype in {"float32", "float64"}.intersection(parts):
        params = Params(*(np.asarray(a, dtype) for a in params64))  # numpy: no compile
        _, single = parallel.loss_and_grads_one_device(params, xb, yb)
        _, wrong = loss_and_grads_per_shard_bn(mesh, params, xb, yb)
        rows = parallel.sharded_rows(mesh, params, xb, yb)
        rows += parallel.gradient_rows(wrong, single, "per-shard BN", numerics.SHARDED)
        hlo = parallel.sharded_hlo(mesh, params, xb, yb)  # jit's cached program, no recompile
        short = {"float32": "f32", "float64": "f64"}[dtype]
        out[dtype] = {
            "rows": [[r.name, r.against, r.eps_scale, r.bound] for r in rows],
            "collectives": parallel.count_collectives(hlo),
            "local_hidden": f"{short}[{BATCH // N_DEVICES},{N_HIDDEN}]" in hlo,
            "global_hidden": f"{short}[{BATCH},{N_HIDDEN}]" in hlo,
        }

    key, schedule = jax.random.key(5), step.Schedule(lr=0.1, decay_step=250, decay=0.1)
    if "train" in parts:
        args = (params64, key, 0, x, y, TRAIN_STEPS, BATCH, schedule)
        _, one = step.train_chunk(*args)
        _, four = parallel.train_chunk_sharded(mesh, *args)
        p, k, x4, y4 = parallel.replicate(mesh, (params64, key, x, y))
        _, wrong = train_chunk_per_shard_bn(
            p, k, np.int32(0), x4, y4, mesh, TRAIN_STEPS, BATCH, schedule
        )
        hlo = step.train_chunk.lower(  # the program train_chunk_sharded ran, from jit's cache
            p, k, np.int32(0), x4, y4, *args[5:], batch_sharding=parallel.chunk_sharding(mesh)
        )
        hlo = hlo.compile().as_text()
        out["train"] = {
            "one": np.asarray(one).tolist(),
            "four": np.asarray(four).tolist(),
            "wrong": np.asarray(wrong).tolist(),
            "collectives": parallel.count_collectives(hlo),
            "local_batch": f"s32[{TRAIN_STEPS},{BATCH // N_DEVICES}]" in hlo,
            "global_batch": f"s32[{TRAIN_STEPS},{BATCH}]" in hlo,
        }

    errors = {}
    for name, call in {
        "shard_batch": lambda: parallel.shard_batch(mesh, x[:30], y[:30]),
        "train_chunk_sharded": lambda: parallel.train_chunk_sharded(
            mesh, params64, key, 0, x, y, 10, 30, schedule
        ),
    }.items():
        try:
            call()
            errors[name] = None
        except ConfigError as err:
            errors[name] = str(err)
    out["errors"] = errors
    return out


def numpy_params(rng: np.random.Generator) -> Params:
    """float64 parameters with init_params's shapes and scales, drawn by numpy: jax's init would
    compile for ~10 s on a loaded machine, and these tests only need the same parameters for
    every device count."""
    fan_in = 10 * BLOCK
    return Params(
        C=rng.normal(size=(VOCAB, 10)),
        W1=rng.normal(size=(fan_in, N_HIDDEN)) * (5 / 3) / fan_in**0.5,
        b1=rng.normal(size=N_HIDDEN) * 0.1,
        W2=rng.normal(size=(N_HIDDEN, VOCAB)) * 0.1,
        b2=rng.normal(size=VOCAB) * 0.1,
        bngain=rng.normal(size=(1, N_HIDDEN)) * 0.1 + 1.0,
        bnbias=rng.normal(size=(1, N_HIDDEN)) * 0.1,
    )


def run_worker(*parts: str) -> dict:
    """Run :func:`_worker` in a subprocess with 4 simulated CPU devices."""
    flags = os.environ.get("XLA_FLAGS", "")
    env = os.environ | {
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={N_DEVICES}".strip(),
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.devices.test_parallel", *parts],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def results() -> dict:
    """float32 gradients and float64 training: one subprocess, ~8 compiles (~25 s loaded)."""
    return run_worker("float32", "train")


# ----------------------------------------------------------------------------- gradients


def test_the_subprocess_has_the_devices(results) -> None:
    assert results["devices"] == N_DEVICES


def check_gradient_rows(result: dict, dtype: str) -> None:
    """4 devices vs 1: <= 8 eps·scale (same formulas, the sums are only added in another order);
    vs jax.grad of the same sharded loss: <= 32 eps·scale (train.py's manual-vs-autodiff
    contract: different formulas). Per-shard BatchNorm is a different function: every gradient
    BatchNorm touches moves by far more than rounding (b1's is zero by symmetry either way)."""
    rows = result["rows"]
    assert len(rows) == 21  # 7 groups x (1 device, jax.grad, the mistake)
    for name, against, ulps, bound in rows:
        if against == "per-shard BN":
            if name != "b1":
                assert ulps > 1000 * bound, f"{dtype}: the mistake passed for d{name}: {ulps}"
            continue
        assert bound == (8.0 if against == f"{N_DEVICES}dev vs 1dev" else 32.0)
        assert ulps <= bound, f"{dtype} d{name} {against}: {ulps:.3g} eps·scale > {bound}"
    # the synchronisation is real: all-reduces in the compiled backward, and each device holds
    # only its 8 rows of the hidden layer, never the whole batch's
    assert result["collectives"]["all-reduce"] >= 1
    assert result["local_hidden"] and not result["global_hidden"]


def test_sharded_grads_float32(results) -> None:
    check_gradient_rows(results["float32"], "float32")


@pytest.mark.slow
def test_sharded_grads_float64() -> None:
    """float64 in its own subprocess (~4 more compiles): slow set."""
    check_gradient_rows(run_worker("float64")["float64"], "float64")


# ----------------------------------------------------------------------------- training


def test_500_steps_on_4_devices_track_one_device(results) -> None:
    train = results["train"]
    one, four = np.array(train["one"]), np.array(train["four"])
    assert one.shape == four.shape == (TRAIN_STEPS,)
    assert one[-50:].mean() < one[:50].mean() - 0.1  # it trained (the run is not degenerate)
    rel = np.abs(four - one) / np.abs(one)
    assert rel.max() <= LOSS_RTOL, f"step {rel.argmax()}: relative difference {rel.max():.3g}"
    assert train["collectives"]["all-reduce"] >= 1
    assert train["local_batch"] and not train["global_batch"], "the batch was not split"


def test_per_shard_batchnorm_training_breaks_the_contract(results) -> None:
    one, wrong = np.array(results["train"]["one"]), np.array(results["train"]["wrong"])
    rel = np.abs(wrong - one) / np.abs(one)
    assert rel.max() > 10 * LOSS_RTOL, f"per-shard BatchNorm tracked: {rel.max():.3g}"


# ----------------------------------------------------------------------------- errors


def test_batch_that_does_not_divide_is_a_clear_error(results) -> None:
    for name, message in results["errors"].items():
        assert message is not None, f"{name} accepted batch 30 on 4 devices"
        assert "30" in message and "4 devices" in message, message


def test_check_divisible() -> None:
    assert parallel.check_divisible(32, 4) == 32
    with pytest.raises(ConfigError) as info:
        parallel.check_divisible(30, 4)
    pattern = "^{} 30 does not divide evenly over 4 dev"
    names_setting(info.value, pattern, "batch_size", "--batch-size")


def test_more_devices_than_jax_sees_is_a_clear_error() -> None:
    n = len(jax.devices())
    with pytest.raises(ConfigError) as info:
        parallel.make_mesh(n + 1)
    pattern = f"^{{}} {n + 1}: JAX sees only {n} .*xla_force_host_platform_device_count={n + 1} "
    names_setting(info.value, pattern, "devices", "--devices")  # run_training(devices=...)
    with pytest.raises(ConfigError) as info:
        parallel.make_mesh(0)
    names_setting(info.value, "^{} must be an integer >= 1", "devices", "--devices")


def test_one_device_mesh_runs_here() -> None:
    """The main process has one device: a 1-device mesh is the plain single-device path."""
    for mesh in (parallel.make_mesh(1), parallel.make_mesh(1, "cpu")):
        assert mesh.shape == {parallel.BATCH_AXIS: 1}


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1:])))
