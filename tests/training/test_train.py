"""Training (Exercise 4) and its reliability: the loop, the CLI glue, resume, non-finite losses.

Everything runs in-process on one small model and the offline default word list, so the jit
caches are shared between tests: each distinct chunk length or schedule costs one compile.
"""

from __future__ import annotations

import importlib
import json
import shutil
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja._cli import COMMANDS, build_parser
from jaxninja.config import TrainConfig
from jaxninja.data import load_dataset
from jaxninja.errors import ConfigError, NonFiniteLoss, TrainingError
from jaxninja.io.checkpoint import load_checkpoint
from jaxninja.lecture.fused import loss_and_grads
from jaxninja.lecture.model import Params, loss_fused
from jaxninja.lecture.step import batch_indices, learning_rate, train_chunk
from jaxninja.models.lecture import lecture_trainable
from jaxninja.training.evaluate import (
    SAMPLE_SEED_OFFSET,
    calibrate,
    sample_key,
    sample_names,
    split_losses,
)
from jaxninja.training.loop import check_gradients, next_boundary, start_state, train
from jaxninja.training.plots import block_means
from tests.helpers import SMALL, SMALL_FLAGS, names_setting

# One small model for every test: each new chunk length or schedule costs a compile, so the tests
# share these settings (1,000-step runs = one chunk) and the jit caches that go with them.
NON_FINITE = SMALL.replace(steps=2000, lr_decay_step=1000, lr_decay=1e31)  # lr 1e30 at 1,000
EPS32 = float(jnp.finfo(jnp.float32).eps)


@pytest.fixture(scope="module")
def dataset(words_file: Path):
    return load_dataset(words_file, SMALL.block_size)


def run_cli(command: str, argv: list[str]) -> int:
    """``jaxninja <command> argv`` in this process (shares jit caches; errors propagate)."""
    args = build_parser(command).parse_args([command, *argv])
    return getattr(importlib.import_module(COMMANDS[command].module), COMMANDS[command].run)(args)


def assert_bit_identical(a: Params, b: Params) -> None:
    for name, x, y in zip(Params._fields, a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f"{name} differs"


# ------------------------------------------------------------------------------ the loop itself


@partial(jax.jit, static_argnames=("n_steps", "batch_size", "schedule"))
def autodiff_chunk(params, key, step0, x, y, n_steps, batch_size, schedule):
    """step.train_chunk with jax.grad in place of the manual backward (same batches, same lr)."""

    def one_step(p, step):
        ix = batch_indices(key, step, batch_size, x.shape[0])
        loss, grads = jax.value_and_grad(loss_fused)(p, x[ix], y[ix])
        lr = learning_rate(schedule, step).astype(p.W1.dtype)
        return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

    return jax.lax.scan(one_step, params, step0 + jnp.arange(n_steps))


def test_manual_backward_follows_jax_grad_for_1000_steps(dataset):
    """Same seed, same batches: the loss curves of the manual backward and jax.grad agree."""
    config = SMALL
    manual = train(config, dataset).state
    start = start_state(config, dataset.vocab.size)
    params, losses = autodiff_chunk(
        start.params,
        start.batch_key,
        np.int32(0),
        dataset.train.x,
        dataset.train.y,
        1000,
        config.batch_size,
        config.schedule,
    )
    losses = np.asarray(losses)
    assert losses[-100:].mean() < losses[:100].mean() - 0.3  # it learns, so the test has teeth
    # float32: the two backwards round differently (a few eps per update) and SGD carries the
    # difference along; measured max 4 eps x loss over 1,000 steps. 32 eps x loss leaves room,
    # while a wrong gradient moves the loss by > 1e-3 within a few dozen steps.
    np.testing.assert_allclose(manual.losses, losses, rtol=0, atol=32 * EPS32 * losses.max())
    for name, m, r in zip(Params._fields, manual.params, params, strict=True):
        scale = float(jnp.abs(r).max())
        assert float(jnp.abs(m - r).max()) <= 32 * EPS32 * scale, name


def test_same_seed_gives_bit_identical_parameters(dataset):
    a = train(SMALL, dataset).state
    b = train(SMALL, dataset).state
    assert_bit_identical(a.params, b.params)
    assert a.losses.tobytes() == b.losses.tobytes()
    c = train(SMALL.replace(seed=2), dataset).state
    assert not np.array_equal(np.asarray(a.params.W1), np.asarray(c.params.W1))


def test_stop_request_saves_at_a_step_boundary_and_resumes_bit_identically(dataset):
    """should_stop (what SIGINT sets) saves once, at a chunk end; resuming gives the same run."""
    config = SMALL.replace(steps=2000)
    saved = []
    stopped = train(
        config, dataset, checkpoint_every=777, save=saved.append, should_stop=lambda: True
    )
    assert stopped.interrupted and stopped.state.step == 777
    assert [s.step for s in saved] == [777]
    resumed = train(config, dataset, state=saved[0])
    straight = train(config, dataset)
    assert not resumed.interrupted and resumed.state.step == 2000
    assert straight.steps_per_s > 0 and straight.compile_s > 0  # 2nd chunk reused the 1st's
    assert_bit_identical(resumed.state.params, straight.state.params)
    assert resumed.state.losses.tobytes() == straight.state.losses.tobytes()


def test_check_gradients_passes_the_manual_backward_and_catches_a_wrong_one(dataset):
    """(train(..., check_every=N) calls this at every multiple of N; the CLI smoke test runs it.)"""
    state = start_state(SMALL, dataset.vocab.size)
    x, y = dataset.train.x, dataset.train.y
    check_gradients(state.params, state.batch_key, 1000, x, y, 32)  # the real backward passes

    def wrong(params, stats, xb, yb):  # dW2 off by 1%: the size of a typical backward bug
        loss, grads = loss_and_grads(params, xb, yb)
        return loss, grads._replace(W2=grads.W2 * 1.01), stats

    planted = lecture_trainable()._replace(step=wrong)
    with pytest.raises(TrainingError, match=r"step 1000: manual dW2 differs from jax.grad"):
        check_gradients(state.params, state.batch_key, 1000, x, y, 32, planted)


def test_non_finite_loss_stops_at_its_step_and_saves_nothing_after(dataset):
    """lr 0.1, then 1e30 from step 1,000: parameters overflow, the loss turns nan/inf.

    (A learning rate of 1e6 is not enough: the stable log-softmax keeps the loss finite, ~1e6.)
    """
    config = NON_FINITE
    saved = []
    with pytest.raises(NonFiniteLoss) as info:
        train(config, dataset, checkpoint_every=1000, save=saved.append)
    err = info.value
    assert [s.step for s in saved] == [1000] and err.last_saved == 1000
    assert f"at step {err.step:,};" in str(err) and err.exit_code == 1
    # independently, from the step-1,000 state (one chunk, the program compiled above): the
    # steps before err.step are finite, err.step is not
    good = saved[-1]
    x, y = dataset.train.x, dataset.train.y
    _, losses = train_chunk(
        good.params, good.batch_key, np.int32(good.step), x, y, 1000, 32, config.schedule
    )
    losses = np.asarray(losses)[: err.step - good.step + 1]
    assert np.isfinite(losses[:-1]).all() and not np.isfinite(losses[-1])


def test_calibrate_evaluate_and_sample(dataset):
    result = train(SMALL, dataset)
    params = result.state.params
    stats = calibrate(params, dataset.train.x)
    # the lecture's calibration, in numpy float64: mean and Bessel variance of hprebn over train
    C, W1, b1 = (np.asarray(p, np.float64) for p in params[:3])
    hprebn = C[dataset.train.x].reshape(len(dataset.train.x), -1) @ W1 + b1
    # float32 sums of 28,892 rows vs float64: relative error ~ eps x sqrt(n) at most, 1e-4 is loose
    np.testing.assert_allclose(stats.mean[0], hprebn.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var[0], hprebn.var(0, ddof=1), rtol=1e-4)
    losses = split_losses(params, stats, dataset)
    assert set(losses) == {"train", "val", "test"}
    assert all(2.0 < v < np.log(dataset.vocab.size) for v in losses.values())  # learnt something
    names = sample_names(
        params, stats, dataset.vocab, 5, jax.random.key(7)
    )  # 5 as in the CLI tests
    again = sample_names(params, stats, dataset.vocab, 5, jax.random.key(7))
    assert len(names) == 5 and names == again  # seeded: the same key gives the same names
    assert all("." not in n and set(n) <= set(dataset.vocab.chars) for n in names)
    assert names != sample_names(params, stats, dataset.vocab, 5, jax.random.key(8))


def test_sample_key_is_the_eager_fold_in_of_the_seed():
    """One compiled program gives the key the eager ops gave (seeds past int32 included)."""
    for seed in (0, 2147483647, 2**31, 2**32 - 1):
        eager = jax.random.fold_in(jax.random.key(seed), SAMPLE_SEED_OFFSET)
        assert np.array_equal(jax.random.key_data(sample_key(seed)), jax.random.key_data(eager))


# ------------------------------------------------------------------------------ the CLI glue


def test_train_cli_smoke_writes_files_that_load(words_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = f"--data {words_file} --steps 1000 --out {out} --samples 5 --check-every 1000".split()
    assert run_cli("train", argv + SMALL_FLAGS) == 0
    printed = capsys.readouterr().out
    assert "train " in printed and " val " in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_hidden"] == 16 and summary["config"]["steps"] == 1000
    assert summary["steps_per_s"] is None  # one chunk, which compiled: no clean rate
    assert summary["device"]["platform"] == "cpu"
    assert len(summary["samples"]) == 5
    losses = np.load(out / "losses.npy")
    assert losses.shape == (1000,) and losses[-50:].mean() < losses[:50].mean() - 0.3
    assert summary["losses"]["val"] < losses[:10].mean()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(out)
    assert ckpt.step == 1000 and ckpt.bn_stats is not None and ckpt.config["n_embd"] == 4
    # same seed, same device: a second run writes a bit-identical checkpoint (the stored SHA-256
    # covers every array: parameters, statistics, vocabulary, configuration, step, RNG key)
    again = tmp_path / "again"
    argv_again = f"--data {words_file} --steps 1000 --out {again} --samples 0".split()
    assert run_cli("train", argv_again + SMALL_FLAGS) == 0
    checksums = [np.load(d / "checkpoint.npz")["checksum"].tobytes() for d in (out, again)]
    assert checksums[0] == checksums[1]
    # the checkpoint holds exactly what the library trains: same seed, same parameters
    assert_bit_identical(Params(*ckpt.params), train(SMALL, load_dataset(words_file)).state.params)
    assert run_cli("evaluate", ["--checkpoint", str(out)]) == 0
    evaluated = capsys.readouterr().out
    assert f"val {summary['losses']['val']:.4f}" in evaluated
    assert run_cli("sample", ["--checkpoint", str(out / "checkpoint.npz"), "--num", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    # without --checkpoint, sample and evaluate read train's default folder, ./out
    (tmp_path / "cwd").mkdir()
    shutil.copytree(out, tmp_path / "cwd" / "out")
    monkeypatch.chdir(tmp_path / "cwd")
    assert run_cli("sample", ["--num", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert run_cli("evaluate", []) == 0
    assert f"val {summary['losses']['val']:.4f}" in capsys.readouterr().out


def test_resume_at_step_777_is_bit_identical_to_a_straight_run(words_file, tmp_path):
    common = ["--data", str(words_file), "--samples", "0", *SMALL_FLAGS]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert run_cli("train", [*common, "--steps", "2000", "--out", str(straight)]) == 0
    assert run_cli("train", [*common, "--steps", "777", "--out", str(broken)]) == 0
    assert load_checkpoint(broken).step == 777
    assert run_cli("train", ["--resume", str(broken), "--steps", "2000", "--samples", "0"]) == 0
    a, b = load_checkpoint(straight), load_checkpoint(broken)
    assert a.step == b.step == 2000 and a.config == b.config
    assert_bit_identical(Params(*a.params), Params(*b.params))
    assert np.array_equal(a.rng_key, b.rng_key)
    assert np.load(straight / "losses.npy").tobytes() == np.load(broken / "losses.npy").tobytes()


def test_resume_refuses_a_changed_run_flag(words_file, tmp_path):
    out = tmp_path / "run"
    run_cli(
        "train", f"--data {words_file} --out {out} --samples 0 --steps 1000".split() + SMALL_FLAGS
    )
    with pytest.raises(ConfigError) as info:
        run_cli("train", ["--resume", str(out), "--n-hidden", "32", "--steps", "2000"])
    names_setting(info.value, "^{} 32 does not match the checkpoint", "n_hidden", "--n-hidden")
    with pytest.raises(ConfigError) as info:
        run_cli("train", ["--resume", str(out), "--steps", "100"])
    names_setting(info.value, "^{} 100 is below the checkpoint's step 1,000", "steps", "--steps")


def test_train_cli_non_finite_names_the_step_and_keeps_the_last_good_checkpoint(
    words_file, tmp_path
):
    out = tmp_path / "run"
    argv = f"--data {words_file} --out {out} --samples 0 --checkpoint-every 1000".split()
    argv += ["--steps", "2000", "--lr-decay-step", "1000", "--lr-decay", "1e31"]
    argv += ["--n-embd", "4", "--n-hidden", "16", "--seed", "1"]  # = NON_FINITE
    with pytest.raises(TrainingError) as info:
        run_cli("train", argv)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 1
    assert "at step 1,0" in message and "last good checkpoint (step 1,000)" in message
    assert load_checkpoint(out).step == 1000
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.npz",
        "losses.npy",
        "val_losses.npy",
    ]


@pytest.mark.slow
def test_lecture_configuration_reaches_the_lectures_validation_loss(names_txt, tmp_path, capsys):
    """Exercise 4 as in the lecture (200,000 steps on names.txt): val <= 2.12 (lecture 2.1099)."""
    out = tmp_path / "lecture"
    assert run_cli("train", ["--data", str(names_txt), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_params"] == 12297  # the lecture's parameter count
    assert summary["losses"]["val"] <= 2.12 and summary["losses"]["train"] <= 2.10
    assert len(summary["samples"]) == 20


# ------------------------------------------------------------------------------ small pieces


def test_chunks_end_at_every_multiple_and_at_the_end():
    assert next_boundary(0, 2000, 1000) == 1000
    assert next_boundary(777, 2000, 1000) == 1000  # a resumed run realigns with the straight one
    assert next_boundary(1000, 2000, 1000, 300, 0) == 1200  # the next multiple of 300
    assert next_boundary(1900, 1950, 1000, 300) == 1950  # never past the end


def test_config_round_trips_through_its_json_form():
    config = TrainConfig(n_hidden=7, lr=0.5, lr_decay_step=3, lr_decay=0.25, seed=9)
    as_json = json.loads(json.dumps(config.to_dict() | {"data": "somewhere"}))
    assert as_json["schedule"] == {"lr": 0.5, "decay_step": 3, "decay": 0.25}
    assert TrainConfig.from_dict(as_json) == config


def test_loss_plot_averages_log10_loss_per_block():
    losses = np.array([10.0, 10.0, 100.0, 100.0, 1000.0])  # log10: 1, 1, 2, 2, 3
    starts, means = block_means(losses, 2)
    assert starts.tolist() == [0, 2, 4] and means.tolist() == [1.0, 2.0, 3.0]  # last one partial


def test_train_float64_turns_on_x64_for_the_call_only(dataset, x64_off):
    """float64: train() computes in float64 with x64 switched on for the call, and puts the
    switch back after (issue 26: one dtype rule; train() used to refuse while x64 was off)."""
    result = train(SMALL.replace(dtype="float64", steps=100), dataset)
    assert result.params.W1.dtype == np.float64 and result.state.losses.dtype == np.float64
    assert np.isfinite(list(result.split_losses.values())).all()
    assert not jax.config.jax_enable_x64
