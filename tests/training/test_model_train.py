"""Training your own model: a model file trains with its own backward through the same loop as
the lecture's MLP, resumes bit for bit, runs K seeds in one program bit for bit as each alone,
samples and evaluates; --check-every catches a planted mistake by name; a broken protocol or a
changed file is one line. The small model is ``examples/models/tiny_mlp.py`` (1,907 parameters:
each run here is a few hundred steps and compiles once per chunk length)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxninja._cli import main
from jaxninja.config import TrainConfig
from jaxninja.data import load_dataset
from jaxninja.errors import CheckpointError, ModelError, TrainingError
from jaxninja.io.checkpoint import load_checkpoint
from jaxninja.lecture.step import chunk_indices, learning_rate, sgd_step
from jaxninja.models.lecture import lecture_trainable
from jaxninja.models.trainable import file_trainable
from jaxninja.training.chunk import train_chunk
from jaxninja.training.inference import evaluate, sample
from jaxninja.training.loop import start_state
from jaxninja.training.many import run_many
from jaxninja.training.run import run_training
from tests.helpers import ROOT, names_setting

TINY = ROOT / "examples" / "models" / "tiny_mlp.py"
STEPS = dict(steps=400, lr_decay_step=300)


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> Path:
    """A small word list of its own (fast to load, the same vocabulary in every run)."""
    path = tmp_path_factory.mktemp("words") / "words.txt"
    names = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia"]
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    more = ["".join(rng.choice(letters, rng.integers(3, 8))) for _ in range(400)]
    path.write_text("\n".join(names + more) + "\n")
    return path


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _same(a, b) -> bool:
    return all(x.tobytes() == y.tobytes() for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _train(words: Path, out: Path, model=TINY, **kw):
    options = dict(data=words, samples=3, progress=False, log=None, model=model)
    return run_training(kw.pop("config", STEPS), out, **(options | kw))


def test_the_lecture_through_the_protocol_is_bit_identical_to_its_own_chunk():
    """The generic scan with the lecture's Trainable runs exactly the lecture's program: a
    ``lax.scan`` of the lecture's own ``sgd_step`` over the same batches and learning rates."""
    ds = load_dataset(None, 3)
    config = TrainConfig(n_embd=4, n_hidden=16, seed=3)
    state = start_state(config, ds.vocab.size)
    x, y, key = jnp.asarray(ds.train.x), jnp.asarray(ds.train.y), state.batch_key

    @jax.jit
    def lecture_chunk(params):
        steps = jnp.arange(300)
        ix = chunk_indices(key, steps, 32, x.shape[0])
        lrs = learning_rate(config.schedule, steps).astype(params.W1.dtype)
        return jax.lax.scan(sgd_step, params, (x[ix], y[ix], lrs))

    old, old_losses = lecture_chunk(state.params)
    step = lecture_trainable().step
    new, stats, losses = train_chunk(
        step, state.params, None, key, np.int32(0), x, y, 300, 32, config.schedule
    )
    assert stats is None and _same(old, new) and old_losses.tobytes() == losses.tobytes()


def test_a_model_file_trains_resumes_samples_and_evaluates(words, tmp_path):
    straight = _train(words, tmp_path / "a")
    losses = straight.split_losses
    first = float(straight.result.losses[:20].mean())  # random words: it learns their letters
    assert losses["train"] < first - 0.05 and np.isfinite(list(losses.values())).all()
    assert len(straight.samples) == 3 and straight.summary["model"]["file"] == "tiny_mlp.py"
    stopped = _train(words, tmp_path / "b", config=STEPS | {"steps": 150})
    resumed = _train(words, tmp_path / "b", config={"steps": 400}, resume=tmp_path / "b")
    assert _same(straight.result.params, resumed.result.params)
    assert straight.result.losses.tobytes() == resumed.result.losses.tobytes()
    assert stopped.result.state.step == 150 and resumed.split_losses == losses
    assert sample(tmp_path / "a", 3, seed=0, model=TINY) == sample(tmp_path / "b", 3, model=TINY)
    assert evaluate(tmp_path / "a", model=TINY).losses == losses
    ckpt = load_checkpoint(tmp_path / "a")
    assert ckpt.model["sha256"] == dict(file_trainable(TINY).record)["sha256"]
    assert sorted(ckpt.params) == ["C", "W1", "W2", "b1", "b2"]  # by key path, no code


@pytest.mark.slow  # ~8 s, three runs; test_many pins K seeds = K runs (same code) by default
def test_seeds_in_one_program_equal_each_seed_alone(words, tmp_path):
    many = run_many(
        STEPS | {"seed": 5}, tmp_path / "many", seeds=2, data=words, samples=0, progress=False,
        log=None, model=TINY,
    )  # fmt: skip
    for i, seed in enumerate((5, 6)):
        alone = _train(words, tmp_path / f"alone{seed}", config=STEPS | {"seed": seed})
        assert _same(many.result.states[i].params, alone.result.params)
    plan = json.loads((tmp_path / "many" / "runs.json").read_text())
    assert plan["model"]["file"] == "tiny_mlp.py"


def test_check_every_names_the_parameter_of_a_planted_mistake(words, tmp_path):
    wrong = tmp_path / "wrong.py"
    text = TINY.read_text()
    assert '"b1": dhpre.sum(0),' in text
    wrong.write_text(text.replace('"b1": dhpre.sum(0),', '"b1": 1.05 * dhpre.sum(0),'))
    with pytest.raises(TrainingError, match=r"step 0: manual db1 differs from jax.grad"):
        _train(words, tmp_path / "w", model=wrong, check_every=100)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "broken.py"
    text = TINY.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            '"W1": acts["embcat"].T @ dhpre,',
            "",
            r"backward\(\) returned no gradient for parameter W1",
        ),
        ('"b2": dlogits.sum(0),', '"b2": dlogits,', r"backward\(\) gives b2 shape \(32, \d+\)"),
        ('"b1": dhpre.sum(0),', '"b1": dhpre.sum(0) * jnp.nan,', r"non-finite db1 at step 0"),
        ('"b1": jnp.full((N_HIDDEN,), 0.01),', '"b1": jnp.zeros(N_HIDDEN, int),', r"b1 is int"),
        (
            "def logits(",
            "def stats_init(params):\n    return {}\n\n\ndef logits(",
            r"come together",
        ),
        ('"steps": 2_000}', '"steps": 2_000, "stepz": 1}', r"unknown setting\(s\) stepz"),
        (
            'dh = dlogits @ params["W2"].T',
            'dh = dlogits @ acts["nope"]',
            r"backward\(\) raised KeyError \(line \d+\)",
        ),
        (
            '    return {\n        "logits"',
            '    return [\n        "logits"',
            r"SyntaxError|syntax error",
        ),
    ],
)
def test_a_broken_protocol_is_one_line_naming_the_function(words, tmp_path, old, new, match):
    path = _broken(tmp_path, old, new)
    with pytest.raises(ModelError, match=match) as info:
        _train(words, tmp_path / "out", model=path, config={"steps": 10})
    assert "\n" not in str(info.value)


def test_a_changed_model_file_or_the_wrong_model_is_refused_in_one_line(words, tmp_path, capsys):
    _train(words, tmp_path / "run", config=STEPS | {"steps": 100}, samples=0)
    changed = tmp_path / "tiny_mlp.py"
    changed.write_text(TINY.read_text() + "# an edit\n")
    with pytest.raises(ModelError) as info:
        _train(words, tmp_path / "run", model=changed, config={"steps": 200},
               resume=tmp_path / "run")  # fmt: skip
    names_setting(info.value, "; pass {} to use it anyway$", "allow_model_change",
                  "--allow-model-change")  # fmt: skip
    allowed = _train(
        words, tmp_path / "run", model=changed, config={"steps": 200}, resume=tmp_path / "run",
        allow_model_change=True, samples=0,
    )  # fmt: skip
    assert allowed.result.state.step == 200
    assert main(["sample", "--checkpoint", str(tmp_path / "run")]) == 2  # no --model
    assert "pass --model with that file" in capsys.readouterr().err
    lecture = tmp_path / "lecture"
    run_training({"steps": 10, "n_embd": 4, "n_hidden": 8}, lecture, data=words, samples=0,
                 progress=False, log=None)  # fmt: skip
    code = main(["evaluate", "--checkpoint", str(lecture), "--model", str(TINY)])
    assert code == 2 and "was trained with the lecture's model" in capsys.readouterr().err


def test_model_flag_errors_exit_2_in_one_line(tmp_path, capsys):
    missing = main(["train", "--model", str(tmp_path / "nope.py"), "--out", str(tmp_path / "o")])
    variant = main(["train", "--model", f"{TINY}:part9", "--out", str(tmp_path / "o")])
    sizing = main(["train", "--model", str(TINY), "--n-hidden", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert (missing, variant, sizing) == (2, 2, 2) and len(err) == 3
    assert "nope.py" in err[0] and "defines no 'part9'" in err[1]
    assert "--n-hidden: only for the lecture's model" in err[2]


def test_a_model_without_logits_trains_and_says_what_is_skipped(words, tmp_path, capsys):
    path = _broken(tmp_path, "def logits(", "def _no_logits(")
    lines: list[str] = []
    run = _train(
        words, tmp_path / "run", model=path, config=STEPS | {"steps": 50}, log=lines.append
    )
    assert run.split_losses is None and run.samples == []
    assert "no split losses (the model defines no logits)" in lines[-2]
    with pytest.raises(ModelError, match=r"defines no logits\(\), so there is nothing to sample"):
        sample(tmp_path / "run", 2, model=path)
    with pytest.raises(ModelError, match=r"--seeds/--sweep need it"):
        run_many({"steps": 50}, tmp_path / "many", seeds=2, data=words, model=path, log=None)


def test_evaluate_refuses_a_word_list_changed_since_training(words, tmp_path):
    copy = tmp_path / "words.txt"
    copy.write_text(words.read_text())
    _train(copy, tmp_path / "run", config=STEPS | {"steps": 20}, samples=0)
    copy.write_text(words.read_text() + "zzyzx\n")
    with pytest.raises(CheckpointError, match=r"was trained on other words .* the file changed"):
        evaluate(tmp_path / "run", model=TINY)
    assert evaluate(tmp_path / "run", data=copy, model=TINY).source == str(copy)
