"""Nothing lost (issue 12): the trained state is saved before finishing, each finishing step fails
in one line naming the safe checkpoint, work that cannot fit is refused before it starts, and a
folder holding a run is never written over silently.

In-process through :func:`jaxninja.run_training` (the CLI is one call of it), on test_train.py's
small model so the jit caches are shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxninja
from jaxninja.errors import CheckpointError, ConfigError, TrainingError
from jaxninja.io.checkpoint import load_checkpoint
from jaxninja.lecture.fused import loss_and_grads
from jaxninja.models.lecture import lecture_trainable
from jaxninja.training import evaluate as evaluation
from jaxninja.training import memory, run, rundir
from tests.helpers import ROOT, SMALL

QUIET = {"progress": False, "log": None}


def _boom(*args, **kwargs):
    raise MemoryError("RESOURCE_EXHAUSTED: out of memory allocating 9.3 GiB")


@pytest.mark.parametrize(
    "step_name, target",
    [("calibrating BatchNorm", "calibrate"), ("evaluating", "split_losses"),
     ("sampling", "sample_names"), ("plotting the loss", "plot_run")],
)  # fmt: skip
def test_a_failing_finishing_step_keeps_the_trained_run(
    words_file, tmp_path, monkeypatch, step_name, target
):
    out = tmp_path / "run"
    owner = {"plot_run": run, "calibrate": evaluation}.get(target, rundir)  # the lecture's
    monkeypatch.setattr(owner, target, _boom)  # calibrate is its model's finish, looked up there
    with pytest.raises(TrainingError) as info:
        jaxninja.run_training(SMALL, out, data=words_file, samples=3, **QUIET)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{step_name} failed (MemoryError: ")
    assert f"the trained checkpoint (step 1,000) is safe in {out / 'checkpoint.npz'}" in message
    ckpt = load_checkpoint(out)
    assert ckpt.step == 1000 and (ckpt.bn_stats is None) == (target == "calibrate")
    monkeypatch.undo()
    # the saved run is the trained run: finishing it later gives a straight run's checkpoint
    done = jaxninja.run_training({}, out, resume=out, samples=3, **QUIET)
    straight = jaxninja.run_training(
        SMALL, tmp_path / "straight", data=words_file, samples=3, **QUIET
    )
    assert done.summary["losses"] == straight.summary["losses"]
    assert done.samples == straight.samples
    a, b = load_checkpoint(out), load_checkpoint(tmp_path / "straight")
    for x, y in zip(a.params + a.bn_stats, b.params + b.bn_stats, strict=True):
        assert x.tobytes() == y.tobytes()


def test_a_checkpoint_without_statistics_is_calibrated_on_use(words_file, tmp_path, monkeypatch):
    out, done = tmp_path / "uncalibrated", tmp_path / "done"
    monkeypatch.setattr(evaluation, "calibrate", _boom)
    with pytest.raises(TrainingError):
        jaxninja.run_training(SMALL, out, data=words_file, samples=0, **QUIET)
    monkeypatch.undo()
    jaxninja.run_training(SMALL, done, data=words_file, samples=0, **QUIET)
    assert load_checkpoint(out).bn_stats is None
    assert jaxninja.sample(out, 6, seed=2) == jaxninja.sample(done, 6, seed=2)
    assert jaxninja.evaluate(out).losses == jaxninja.evaluate(done).losses


@pytest.mark.parametrize(
    "changes, samples",
    [({"n_hidden": 10**8}, 0), ({"n_embd": 10**7}, 0), ({"block_size": 10**7}, 0),
     ({"steps": 10**12}, 0), ({}, 10**11)],
)  # fmt: skip
def test_work_that_cannot_fit_is_refused_before_it_starts(words_file, tmp_path, changes, samples):
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"needs about [\d.]+ GiB of memory but this machine"):
        jaxninja.run_training(
            SMALL.replace(**changes), out, data=words_file, samples=samples, **QUIET
        )
    assert not out.exists()  # refused before the folder was made


def test_the_estimate_counts_what_grows(words_file) -> None:
    base = memory.run_bytes(SMALL, 30_000, 27)
    assert memory.run_bytes(SMALL.replace(steps=10**8), 30_000, 27) > base + 10**9
    assert memory.run_bytes(SMALL, 30_000, 27, runs=8) > memory.run_bytes(SMALL, 30_000, 27)
    assert memory.run_bytes(SMALL, 30_000, 27, samples=10**7) > base + 10**9
    memory.check_fits(base, "this run", available=base)  # exactly enough is enough
    with pytest.raises(ConfigError, match="this run needs about"):
        memory.check_fits(base + 1, "this run", available=base)
    available = memory.available_bytes()
    assert available is None or available > 2**28  # this machine: the cgroup or MemAvailable


def test_a_folder_holding_a_run_needs_resume_or_overwrite(words_file, tmp_path) -> None:
    out = tmp_path / "run"
    first = jaxninja.run_training(SMALL, out, data=words_file, samples=0, **QUIET)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConfigError, match=r"already holds a run .*resume= .*overwrite=$"):
        jaxninja.run_training(SMALL.replace(seed=2), out, data=words_file, **QUIET)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    again = jaxninja.run_training(
        SMALL.replace(seed=2), out, data=words_file, samples=0, overwrite=True, **QUIET
    )
    assert again.summary["config"]["seed"] == 2 != first.summary["config"]["seed"]
    assert load_checkpoint(out).config["seed"] == 2


def test_evaluation_runs_in_bounded_chunks(words_file) -> None:
    """Calibration and split losses over chunks of rows equal the whole-split computation."""
    from jaxninja.lecture.model import batch_stats, hprebn_of, loss_fused
    from jaxninja.training.evaluate import calibrate, split_loss

    data = jaxninja.load_dataset(words_file)
    params = jaxninja.train(SMALL, data, evaluate=False).params
    x, y = data.train.x, data.train.y
    whole = batch_stats(hprebn_of(params, x))
    chunked = calibrate(params, x, rows=1000)  # 28,892 rows: 29 chunks, the last one padded
    # float32 sums in another order: ~eps x sqrt(chunks) relative; 1e-5 leaves room
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunked.var, whole.var, rtol=1e-5)
    loss = float(split_loss(params, whole, x, y, rows=1000))
    assert loss == pytest.approx(float(loss_fused(params, x, y, whole)), rel=1e-5)


def test_through_the_cli_a_failing_finish_is_one_line_and_the_run_is_safe(words_file, tmp_path):
    """A real fault in its own process: loss.png cannot be written (a folder is in the way)."""
    out = tmp_path / "run"
    (out / "loss.png").mkdir(parents=True)
    argv = ["train", "--data", str(words_file), "--steps", "1000", "--n-embd", "4"]
    argv += ["--n-hidden", "16", "--samples", "2", "--out", str(out)]
    argv += ["--overwrite"]  # the folder holds something jaxninja did not write: write beside it
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "jaxninja", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, lines
    assert lines[0].startswith("jaxninja: error: plotting the loss failed (")
    assert f"is safe in {out / 'checkpoint.npz'}" in lines[0]
    ckpt = load_checkpoint(out)
    assert ckpt.step == 1000 and ckpt.bn_stats is not None
    assert json.loads((out / "summary.json").read_text())["losses"]["val"] > 0


def test_a_plot_that_fails_while_writing_leaves_the_old_plot(tmp_path) -> None:
    """Plots are written atomically: a savefig that fails halfway through leaves the previous
    file as it was and no temporary file; a good one replaces it whole."""
    from jaxninja.io.atomic import save_figure
    from jaxninja.training.plots import plot_loss

    path = tmp_path / "loss.png"
    path.write_bytes(b"the previous plot")

    class HalfFigure:
        def savefig(self, f, **kwargs) -> None:
            f.write(b"\x89PNG\r\n\x1a\n half a picture")
            raise MemoryError("out of memory while drawing")

    with pytest.raises(MemoryError):
        save_figure(HalfFigure(), path)
    assert path.read_bytes() == b"the previous plot" and os.listdir(tmp_path) == ["loss.png"]
    plot_loss(np.linspace(3.0, 2.0, 100), path)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[-8:-4] == b"IEND"
    assert os.listdir(tmp_path) == ["loss.png"]


def test_sampling_that_cannot_fit_is_refused_before_it_starts(words_file, tmp_path) -> None:
    """`sample --num 10**12` is checked as `train --samples` is: one line, before any work."""
    out = tmp_path / "run"
    jaxninja.run_training(SMALL, out, data=words_file, samples=0, **QUIET)
    with pytest.raises(ConfigError, match=r"^num= 1,000,000,000,000 names needs about"):
        jaxninja.sample(out, 10**12)
    assert len(jaxninja.sample(out, 3)) == 3


def test_sample_draws_each_batch_only_when_asked_for(words_file, tmp_path, monkeypatch) -> None:
    """`sample --num N` streams: the settings and the checkpoint are checked at once, then each
    batch of names is drawn when the previous one was printed (one batch held, not N names);
    the names are those `jaxninja.sample` returns."""
    from jaxninja.training.inference import sample_batches

    out = tmp_path / "run"
    jaxninja.run_training(SMALL, out, data=words_file, samples=0, **QUIET)
    with pytest.raises(ConfigError):
        sample_batches(out, 0)  # refused before any iteration
    drawn, real = [], evaluation._sample_batch
    monkeypatch.setattr(evaluation, "_sample_batch", lambda *a: drawn.append(a[3]) or real(*a))
    batches = sample_batches(out, evaluation.SAMPLE_BATCH + 3, seed=1)
    assert drawn == []
    first = next(batches)
    assert len(first) == evaluation.SAMPLE_BATCH and drawn == [evaluation.SAMPLE_BATCH]
    rest = list(batches)
    assert drawn == [evaluation.SAMPLE_BATCH, 3] and [len(b) for b in rest] == [3]
    assert first + rest[0] == jaxninja.sample(out, evaluation.SAMPLE_BATCH + 3, seed=1)


def test_a_limit_on_the_process_own_cgroup_is_read(tmp_path) -> None:
    """cgroup v2: the limit files of this process's group and of each parent, below the root."""
    root = tmp_path / "cgroup"
    (root / "system.slice" / "job.service").mkdir(parents=True)
    proc = tmp_path / "self_cgroup"
    proc.write_text("0::/system.slice/job.service\n")
    assert memory.own_cgroup_files(proc, root) == [
        root / "system.slice" / "job.service" / "memory.max",
        root / "system.slice" / "memory.max",
    ]
    proc.write_text("12:memory:/legacy\n")  # cgroup v1 lines: the top-level files cover them
    assert memory.own_cgroup_files(proc, root) == []
    assert memory.own_cgroup_files(tmp_path / "missing", root) == []


def test_a_diverged_checkpoint_is_refused_by_sample_and_evaluate(words_file, tmp_path) -> None:
    """NaN or inf parameters (a run that diverged): sample printed empty names and evaluate
    printed nan, both exit 0; now each is one line naming the arrays, nothing that looks like
    a result."""
    out = tmp_path / "run"
    jaxninja.run_training(SMALL, out, data=words_file, samples=0, **QUIET)
    ckpt = load_checkpoint(out)
    w1 = np.array(ckpt.params.W1)
    w1[0, :3] = [np.nan, np.inf, -np.inf]
    bad = ckpt._replace(params=ckpt.params._replace(W1=w1))
    for use in (lambda c: jaxninja.sample(c, 3), jaxninja.evaluate):
        with pytest.raises(CheckpointError, match=r"non-finite parameters: W1 \(3 of [\d,]+\)"):
            use(bad)
    assert len(jaxninja.sample(ckpt, 3)) == 3 and jaxninja.evaluate(ckpt).losses["val"] > 0


def test_a_run_whose_split_losses_are_not_finite_fails_in_one_line(words_file, tmp_path):
    """lr 1e15: the training losses stay finite (~1e16) but BatchNorm's calibrated variance
    overflows, and the split losses are NaN: one line naming them, no summary, the checkpoint
    kept."""
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"the run diverged: non-finite split losses") as info:
        jaxninja.run_training(SMALL.replace(lr=1e15), out, data=words_file, samples=3, **QUIET)
    assert "\n" not in str(info.value) and str(out / "checkpoint.npz") in str(info.value)
    assert load_checkpoint(out).step == SMALL.steps and not (out / "summary.json").exists()


def test_the_validation_curve_is_evaluate_at_its_steps_and_survives_resume(words_file, tmp_path):
    """loss.png's validation points: the loss evaluate gives at those steps, kept in
    val_losses.npy, carried through a resume; val_every=0 keeps none."""
    two = SMALL.replace(steps=2000)
    straight = jaxninja.run_training(two, tmp_path / "a", data=words_file, samples=0,
                                     val_every=1000, **QUIET)  # fmt: skip
    curve = np.load(tmp_path / "a" / "val_losses.npy")
    assert curve[:, 0].tolist() == [1000, 2000]
    assert curve[1, 1] == jaxninja.evaluate(tmp_path / "a").losses["val"]
    half = jaxninja.run_training(SMALL, tmp_path / "b", data=words_file, samples=0,
                                 val_every=1000, **QUIET)  # fmt: skip
    assert curve[0, 1] == half.split_losses["val"]
    jaxninja.run_training({"steps": 2000}, tmp_path / "b", resume=tmp_path / "b", samples=0,
                          val_every=1000, **QUIET)  # fmt: skip
    assert np.load(tmp_path / "b" / "val_losses.npy").tobytes() == curve.tobytes()
    assert straight.result.state.val_curve.tobytes() == curve.tobytes()
    jaxninja.run_training(SMALL, tmp_path / "c", data=words_file, samples=0, val_every=0, **QUIET)
    assert not (tmp_path / "c" / "val_losses.npy").exists()


def test_check_every_at_batch_3_calls_rounding_rounding_and_a_mistake_a_mistake(names_dataset):
    """At batch 3 BatchNorm's variance is nearly singular: the lecture's correct dC was 490
    eps·scale off jax.grad in float32 at step 1 (the bound is 32), and stopped a correct run.
    Recomputed in float64 it is the same size in eps·scale: rounding, a note, not a stop. A
    planted 1e-3 relative mistake at the same step is ~5e8 times larger in float64: stopped."""
    from jaxninja.training.loop import check_gradients, train

    config = jaxninja.TrainConfig(batch_size=3, steps=1)
    state = train(config, names_dataset, evaluate=False).state
    x, y = names_dataset.train.x, names_dataset.train.y
    note = check_gradients(state.params, state.batch_key, 1, x, y, 3)
    assert note is not None and "manual dC differs" in note and "rounding" in note

    def planted(params, stats, xb, yb):
        loss, grads = loss_and_grads(params, xb, yb)
        return loss, grads._replace(C=grads.C * (1 + 1e-3)), stats

    model = lecture_trainable()._replace(step=planted)
    with pytest.raises(TrainingError, match=r"in float64 too: a mistake"):
        check_gradients(state.params, state.batch_key, 1, x, y, 3, model)


@pytest.mark.parametrize(
    "keyword, value", [("check_every", -1), ("checkpoint_every", -5), ("chunk_steps", 0)]
)
def test_the_loops_own_settings_are_refused_from_python(words_file, keyword, value):
    """train() and train_runs() take these as keywords, past the command line's checks."""
    from jaxninja.training.loop import train
    from jaxninja.training.stacked import train_runs

    dataset = jaxninja.load_dataset(words_file, 3)
    with pytest.raises(ConfigError, match=r"must be an integer >= [01], got -?\d"):
        train(SMALL, dataset, **{keyword: value})
    with pytest.raises(ConfigError, match=r"must be an integer >= [01], got -?\d"):
        train_runs([SMALL], dataset, **{keyword: value})
