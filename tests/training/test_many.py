"""Many runs in one program (``--seeds`` / ``--sweep``): each run is the run trained alone.

Short runs of one small model on the offline default word list, so the default test run stays
cheap; the sweep over every K up to 16 is ``slow``. This process has one CPU device; the runs'
axis split over two host devices is checked in a child process.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxninja
from jaxninja._cli import COMMANDS, build_parser, main
from jaxninja._cli.signals import Interrupts
from jaxninja.config import TrainConfig
from jaxninja.data import load_dataset
from jaxninja.errors import ConfigError, RunNonFinite
from jaxninja.io.checkpoint import load_checkpoint
from jaxninja.lecture.model import Params
from jaxninja.training import memory, plan, stacked
from jaxninja.training.loop import train_loop
from jaxninja.training.many import run_many
from tests import helpers
from tests.helpers import ROOT

SMALL = helpers.SMALL.replace(steps=300, lr_decay_step=150)
FLAGS = ["--n-embd", "4", "--n-hidden", "16", "--lr-decay-step", "150", "--seed", "1"]
FLAGS += ["--samples", "2"]
# K = 1; 5, the first K at which a vmap of the runs stopped being bit-identical; 16, the largest
# tested (every K from 1 to 16, both dtypes, is the slow test below)
DEFAULT_KS = (("float32", 1), ("float32", 5), ("float32", 16), ("float64", 5))
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


@pytest.fixture(scope="module")
def dataset(words_file: Path):
    return load_dataset(words_file, SMALL.block_size)


def alone(config: TrainConfig, dataset, **options):
    """The run trained by itself, as ``jaxninja train`` trains it."""
    return train_loop(config, dataset, **options).state


def assert_same_run(a, b) -> None:
    """Bit for bit: every parameter, the step and every step's loss (values and dtype)."""
    assert a.step == b.step
    for name, x, y in zip(Params._fields, a.params, b.params, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f"{name} differs"
    assert a.losses.dtype == b.losses.dtype and a.losses.tobytes() == b.losses.tobytes()


def run_cli(argv: list[str], interrupts: Interrupts | None = None) -> int:
    args = build_parser("train").parse_args(["train", *argv])
    return importlib.import_module(COMMANDS["train"].module).run(args, interrupts)


# ------------------------------------------------------------------ each run is the run alone


def check_k_runs(k: int, dtype: str, dataset) -> None:
    runs = plan.plan_runs(SMALL.replace(dtype=dtype), seeds=k)
    result = stacked.train_runs(runs, dataset, chunk_steps=100)
    assert len(result.states) == k and not result.interrupted
    for config, state in zip(runs, result.states, strict=True):
        assert_same_run(state, alone(config, dataset, chunk_steps=100))


@pytest.mark.parametrize(("dtype", "k"), DEFAULT_KS)
def test_k_seeds_in_one_program_equal_k_runs_alone(k, dtype, dataset, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    check_k_runs(k, dtype, dataset)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_k_up_to_16_equals_the_runs_alone(dtype, dataset, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    for k in range(1, 17):
        check_k_runs(k, dtype, dataset)


def test_sweep_runs_equal_the_runs_alone_and_follow_their_schedule(dataset):
    """lr, lr-decay and lr-decay-step all differ between the two runs of one program (arrays
    in it, statics for the run alone); each run still equals its run alone. (The sweep's
    product order is the plan test's; two runs keep the run-alone compiles to two.)"""
    runs = [
        SMALL.replace(lr=0.05, lr_decay_step=100, lr_decay=0.5),
        SMALL.replace(lr=0.2, lr_decay_step=200, lr_decay=0.2, seed=2),
    ]
    result = stacked.train_runs(runs, dataset)
    for config, state in zip(runs, result.states, strict=True):
        assert_same_run(state, alone(config, dataset))
    assert result.states[0].losses.tobytes() != result.states[1].losses.tobytes()


def test_runs_over_two_host_devices_equal_the_runs_alone(words_file):
    """5 runs over 2 CPU devices (one padding run), in a process that made 2 host devices."""
    code = (
        "import numpy as np, jax\n"
        "from jaxninja.training import plan, stacked\n"
        "from jaxninja.config import TrainConfig\n"
        "from jaxninja.data import load_dataset\n"
        "from jaxninja.training.loop import train_loop\n"
        f"ds = load_dataset({str(words_file)!r}, 3)\n"
        "runs = plan.plan_runs(TrainConfig(n_embd=4, n_hidden=16, steps=200, seed=1), 5)\n"
        "r = stacked.train_runs(runs, ds)\n"
        "assert r.layout.devices == 2 and r.layout.padded == 6, r.layout\n"
        "for c, s in zip(runs, r.states):\n"
        "    ref = train_loop(c, ds).state\n"
        "    for a, b in zip(ref.params, s.params):\n"
        "        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()\n"
        "    assert ref.losses.tobytes() == s.losses.tobytes()\n"
        "print('ok', r.layout.describe(5))\n"
    )
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "5 runs over 2 cpu device(s), one run at a time, 1 padding run(s)" in done.stdout


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_vmapped_groups_agree_with_the_runs_alone_to_rounding(dtype, dataset, request):
    """``group > 1`` (the GPU layout) batches the matmuls, which may sum in another order: the
    runs then agree only to rounding. Measured on this CPU after 300 steps: <= 3 eps relative to
    each parameter array's largest entry (K = 5..16; K <= 4 came out identical); the bound, 64 eps,
    leaves room for another XLA's order, while a wrong batch, schedule or run order moves the
    parameters by percent (the last assertion shows one such mistake is seen)."""
    if dtype == "float64":
        request.getfixturevalue("x64")
    runs = plan.plan_runs(SMALL.replace(dtype=dtype), seeds=8)
    result = stacked.train_runs(runs, dataset, layout=stacked.make_layout(8, group=8))
    assert result.layout.group == 8
    bound = 64 * EPS[dtype]
    refs = [alone(config, dataset) for config in runs]
    for ref, state in zip(refs, result.states, strict=True):
        for x, y in zip(ref.params, state.params, strict=True):
            x, y = np.asarray(x), np.asarray(y)
            assert np.abs(x - y).max() <= bound * np.abs(x).max()
    swapped = np.abs(np.asarray(refs[0].params.W1) - np.asarray(result.states[1].params.W1))
    assert swapped.max() > 1e-3 * np.abs(np.asarray(refs[0].params.W1)).max()


def test_stop_and_resume_of_runs_is_bit_identical(dataset):
    """Straight through in one 300-step chunk, against stopped after the first 100-step chunk
    (a signal's path) and resumed: the same runs (5 runs: the compiled 100-step program of the
    K = 5 test above serves)."""
    runs = plan.plan_runs(SMALL, seeds=5)
    straight = stacked.train_runs(runs, dataset, chunk_steps=300)
    saved = []
    first = stacked.train_runs(
        runs, dataset, chunk_steps=100, save=saved.append, should_stop=lambda: True
    )
    assert first.interrupted and len(saved) == 1 and saved[0][0].step == 100
    rest = stacked.train_runs(runs, dataset, states=saved[0], chunk_steps=100)
    for a, b in zip(straight.states, rest.states, strict=True):
        assert_same_run(a, b)


def test_check_every_checks_each_run_and_changes_nothing(dataset, monkeypatch):
    """``--check-every 100``: every run's manual gradients against jax.grad at steps 0, 100, 200
    (5 runs, the K = 5 program's chunks), and the runs are still the runs alone."""
    checked = []
    real = stacked.check_gradients

    def spy(params, key, step, *args):
        checked.append(step)
        return real(params, key, step, *args)

    monkeypatch.setattr(stacked, "check_gradients", spy)
    runs = plan.plan_runs(SMALL, seeds=5)
    result = stacked.train_runs(runs, dataset, check_every=100)
    assert checked == [0] * 5 + [100] * 5 + [200] * 5
    for config, state in zip(runs, result.states, strict=True):
        assert_same_run(state, alone(config, dataset, chunk_steps=100))


def test_a_non_finite_run_is_named_with_its_step(dataset):
    runs = plan.plan_runs(SMALL.replace(steps=200, lr_decay_step=100), 1)
    runs = [runs[0], runs[0].replace(lr_decay=1e31, seed=2)]  # lr 1e30 from step 100
    with pytest.raises(RunNonFinite) as err:
        stacked.train_runs(runs, dataset, chunk_steps=100)
    assert err.value.run == 1 and 100 <= err.value.step < 200 and "run 1" in str(err.value)


# ------------------------------------------------------------------ the plan and its statistics


def test_the_mean_validation_curve_is_taken_where_every_run_has_a_point():
    """loss.png's mean of the runs' validation points: only at steps every run measured (a run
    resumed from a folder without a curve has fewer), none without curves."""
    from jaxninja.training.plots import mean_val

    a = np.array([[100, 2.0], [200, 1.0]])
    b = np.array([[200, 3.0]])
    assert mean_val([a, b]).tolist() == [[200, 2.0]]
    assert mean_val([a, a]).tolist() == a.tolist()
    assert mean_val([a, None]) is None and mean_val([a, np.zeros((0, 2))]) is None
    assert mean_val([a, np.array([[300, 1.0]])]) is None


def test_statistics_are_those_of_the_per_run_values():
    values = [2.11, 2.09, 2.125, 2.1]
    s = plan.statistics(values)
    assert s["n"] == 4 and s["mean"] == pytest.approx(np.mean(values), abs=1e-15)
    assert s["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-15)
    assert (s["min"], s["max"]) == (2.09, 2.125)
    assert plan.statistics([2.0])["std"] is None  # one run: no spread to report


def test_plan_is_the_product_of_sweep_points_and_seeds():
    runs = plan.plan_runs(SMALL, 2, [("lr", (0.05, 0.1, 0.2))])
    assert [(r.lr, r.seed) for r in runs] == [(lr, s) for lr in (0.05, 0.1, 0.2) for s in (1, 2)]
    assert plan.varying(runs) == ("seed", "lr")
    assert plan.run_name(3, 8) == "run-03" and plan.run_name(3, 1024) == "run-0003"


BAD = [
    (["--seeds", "0"], "--seeds must be an integer >= 1"),
    (["--seeds", "two"], "invalid int value"),
    (["--seeds", "2", "--seed", str(2**32 - 1)], "beyond 2**32 - 1"),
    (["--seeds", "100000"], "--seeds must be at most"),
    (["--sweep", "lr"], "expected NAME=V1,V2"),
    (["--sweep", "lr="], "expected NAME=V1,V2"),
    (["--sweep", "n-hidden=8,16"], "cannot be swept"),
    (["--sweep", "lr=0.1,fast"], "is not a valid --lr"),
    (["--sweep", "lr=0.1,-1"], "must be a finite number > 0"),
    (["--sweep", "lr=0.1,0.1"], "a value is repeated"),
    (["--sweep", "lr=0.1", "--sweep", "lr=0.2"], "is given twice"),
    (["--sweep", "lr-decay-step=1.5"], "is not a valid --lr-decay-step"),
    (["--seeds", "2", "--devices", "2"], "cannot be combined with --seeds/--sweep"),
    (["--seeds", "2", "--group", "0"], "--group must be an integer >= 1"),
    (["--group", "2"], "--group applies to --seeds / --sweep only"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_seeds_and_sweeps_are_one_line_errors(argv, message, tmp_path, capsys):
    try:
        status = main(["train", *argv, "--out", str(tmp_path / "o")])
    except SystemExit as exit:  # argparse's own type errors (one line too: OneLineParser)
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()  # refused before anything was written


# ------------------------------------------------------------------ the folder


def test_cli_seeds_writes_run_folders_a_table_and_a_plot(words_file, tmp_path, dataset, capsys):
    out = tmp_path / "seeds"
    argv = [*FLAGS, "--data", str(words_file), "--steps", "100", "--out", str(out)]
    assert run_cli([*argv, "--seeds", "2", "--sweep", "lr=0.05,0.2"]) == 0
    text = capsys.readouterr().out
    assert "over all runs (n=4" in text and "lr 0.2 (n=2" in text
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary["runs"]] == ["run-00", "run-01", "run-02", "run-03"]
    for split in ("train", "val", "test"):  # the statistics come from the per-run files
        values = [
            json.loads((out / name / "summary.json").read_text())["losses"][split]
            for name in ("run-00", "run-01", "run-02", "run-03")
        ]
        stats = summary["over_runs"][split]
        assert stats["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert stats["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert (stats["min"], stats["max"]) == (min(values), max(values))
        lr02 = summary["by_setting"][1]["over_seeds"][split]
        assert lr02["mean"] == pytest.approx(np.mean(values[2:]), abs=1e-12)
    assert (out / "loss.png").stat().st_size > 0 and (out / "runs.json").exists()
    ckpt = load_checkpoint(out / "run-03")  # the same checkpoint format as a run alone's
    ref = alone(SMALL.replace(lr=0.2, seed=2, steps=100), dataset)
    assert ckpt.step == 100 and ckpt.bn_stats is not None
    assert all(
        np.asarray(a).tobytes() == np.asarray(b).tobytes()
        for a, b in zip(ckpt.params, ref.params, strict=True)
    )


def test_cli_resume_of_a_multirun_folder_is_bit_identical(words_file, tmp_path, capsys):
    data = ["--data", str(words_file)]
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    assert run_cli([*FLAGS, *data, "--steps", "100", "--seeds", "2", "--out", str(straight)]) == 0
    assert run_cli([*FLAGS, *data, "--steps", "40", "--seeds", "2", "--out", str(parts)]) == 0
    assert run_cli(["--resume", str(parts), "--steps", "100"]) == 0
    for name in ("run-00", "run-01"):
        a, b = load_checkpoint(straight / name), load_checkpoint(parts / name)
        assert a.step == b.step == 100
        for x, y in zip(a.params, b.params, strict=True):
            assert x.tobytes() == y.tobytes()
        la, lb = np.load(straight / name / "losses.npy"), np.load(parts / name / "losses.npy")
        assert la.tobytes() == lb.tobytes()
    with pytest.raises(ConfigError) as info:
        run_cli(["--resume", str(parts), "--seeds", "3"])
    helpers.names_setting(info.value, "^{} 3 does not match", "seeds", "--seeds")
    with pytest.raises(ConfigError) as info:
        run_cli(["--resume", str(parts), "--n-hidden", "8"])
    helpers.names_setting(info.value, "^{} 8 does not match", "n_hidden", "--n-hidden")


def test_each_run_has_the_validation_curve_evaluate_gives(words_file, tmp_path):
    """--seeds/--sweep draw the validation curve too: each run's val_losses.npy holds the loss
    evaluate gives at those steps (the first point: the run alone stopped there), carried
    through a resume bit for bit; the folder's loss.png draws them (val_every=0: none)."""
    quiet = {"data": words_file, "samples": 0, "progress": False, "log": None}
    two = SMALL.replace(steps=200)
    run_many(two, tmp_path / "m", seeds=2, val_every=100, **quiet)
    for i, name in enumerate(("run-00", "run-01")):
        curve = np.load(tmp_path / "m" / name / "val_losses.npy")
        assert curve[:, 0].tolist() == [100, 200]
        assert curve[1, 1] == jaxninja.evaluate(tmp_path / "m" / name).losses["val"]
        half = jaxninja.run_training(
            two.replace(steps=100, seed=two.seed + i), tmp_path / f"alone{i}", val_every=100,
            **quiet,
        )  # fmt: skip
        assert curve[0, 1] == half.split_losses["val"]
    run_many(two.replace(steps=100), tmp_path / "p", seeds=2, val_every=100, **quiet)
    run_many({"steps": 200}, tmp_path / "p", resume=tmp_path / "p", val_every=100, **quiet)
    for name in ("run-00", "run-01"):
        resumed = (tmp_path / "p" / name / "val_losses.npy").read_bytes()
        assert resumed == (tmp_path / "m" / name / "val_losses.npy").read_bytes()
    run_many(two.replace(steps=100), tmp_path / "none", seeds=2, val_every=0, **quiet)
    assert not (tmp_path / "none" / "run-00" / "val_losses.npy").exists()


def test_a_multirun_folder_is_protected_like_a_run_folder(words_file, tmp_path, capsys):
    out = tmp_path / "o"
    base = [*FLAGS, "--data", str(words_file), "--steps", "100", "--out", str(out)]
    assert run_cli([*base, "--seeds", "2"]) == 0
    before = (out / "run-00" / "checkpoint.npz").read_bytes()
    with pytest.raises(ConfigError, match="already holds runs"):
        run_cli([*base, "--seeds", "2"])
    with pytest.raises(ConfigError, match="holds runs"):
        run_cli(base)  # a single run into a multi-run folder
    assert (out / "run-00" / "checkpoint.npz").read_bytes() == before
    assert not (out / "checkpoint.npz").exists()
    single = tmp_path / "single"
    assert run_cli([*FLAGS, "--data", str(words_file), "--steps", "100", "--out", str(single)]) == 0
    with pytest.raises(ConfigError, match="already holds a run"):
        run_cli([*FLAGS, "--data", str(words_file), "--seeds", "2", "--out", str(single)])
    assert run_cli([*base, "--seeds", "2", "--overwrite"]) == 0


def test_a_signal_saves_every_run_and_exits_with_its_status(words_file, tmp_path, capsys):
    out = tmp_path / "o"
    interrupts = Interrupts()
    interrupts.caught.append(signal.SIGINT)  # as if Ctrl-C came during the first chunk
    argv = [*FLAGS, "--data", str(words_file), "--steps", "1100", "--seeds", "2"]
    assert run_cli([*argv, "--out", str(out)], interrupts) == 130
    assert "continue with: jaxninja train --resume" in capsys.readouterr().err
    for name in ("run-00", "run-01"):
        assert load_checkpoint(out / name).step == 1000
    assert not (out / "summary.json").exists()


def test_k_runs_that_would_not_fit_are_refused_before_compiling(words_file, monkeypatch):
    ds = load_dataset(words_file, 3)
    one = memory.run_bytes(SMALL, len(ds.train.y), ds.vocab.size, 2, runs=1)
    many = memory.run_bytes(SMALL, len(ds.train.y), ds.vocab.size, 2, runs=4096)
    assert many > one
    monkeypatch.setattr(memory, "available_bytes", lambda: (one + many) // 2)
    compiled = []
    monkeypatch.setattr(stacked, "runs_chunk", lambda *a, **k: compiled.append(1))
    with pytest.raises(ConfigError, match="these 4,096 runs .* needs about"):
        run_many(SMALL, None, seeds=4096, data=words_file, samples=2, log=None)
    assert not compiled


def test_layout_defaults_keep_one_run_at_a_time_on_cpu():
    layout = stacked.make_layout(5)
    assert layout.group == 1 and layout.padded % layout.devices == 0
    with pytest.raises(ConfigError, match="devices asked"):
        stacked.make_layout(5, devices=len(jax.devices()) + 1)


# ------------------------------------------------------------------ the GPU script


def test_gpu_check_without_a_gpu_says_so_in_one_line_and_exits_0(tmp_path):
    env = os.environ | {"NVIDIA_SMI": str(tmp_path / "no-such-nvidia-smi")}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no NVIDIA GPU" in done.stdout and not done.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_check_module_without_a_gpu_in_jax_exits_0(tmp_path, monkeypatch, capsys):
    from benchmarks import gpu_check

    monkeypatch.setattr(gpu_check, "gpu_present", lambda: None)
    assert gpu_check.main([str(tmp_path / "out")]) == 0
    assert "jax sees no GPU" in capsys.readouterr().out


def test_gpu_check_writes_one_table_and_json_with_every_step(tmp_path, monkeypatch, capsys):
    """The report machinery with stand-in steps (no GPU here): a step that passes, one that
    fails and one that runs out of time each get their row; the exit status says one failed."""
    from benchmarks import gpu_check

    ok = json.dumps({"ok": True, "rows": [{}, {}]})
    monkeypatch.setattr(gpu_check, "gpu_present", lambda: "a stand-in GPU")
    monkeypatch.setattr(
        gpu_check,
        "STEPS",
        [
            ("check", ["-c", f"print({ok!r})"], 30),
            ("lecture", ["-c", "raise SystemExit(3)"], 30),
            ("seeds8", ["-c", "import time; time.sleep(30)"], 1),
        ],
    )
    out = tmp_path / "gpu"
    assert gpu_check.main([str(out)]) == 1
    table = (out / "gpu_check.md").read_text()
    assert "a stand-in GPU" in table and "| check | 0 |" in table
    assert "2 rows, all within the contract: True" in table
    assert "| lecture | 3 |" in table and "| seeds8 | timeout |" in table
    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert [s["step"] for s in steps] == ["check", "lecture", "seeds8"]
