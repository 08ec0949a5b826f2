"""``check --model FILE`` / cross_check_model (issue 13): the WaveNet example passes and its
planted mistakes fail with the right diagnosis; a broken model file is one line and exit 2;
rows that cannot be compared fail with their reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxninja
from jaxninja import background
from jaxninja._cli import main
from jaxninja.errors import ModelError
from jaxninja.models.protocol import load_model
from tests.helpers import ROOT

WAVENET = ROOT / "examples" / "models" / "wavenet.py"

TINY = """
import jax.numpy as jnp
import numpy as np

def init(key):
    rng = np.random.default_rng(0)
    return {"W": rng.standard_normal((4, 3)).astype(np.float32), "b": np.full(3, 0.1, np.float32)}

def batch(key):
    return np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)

def forward(p, x, tap):
    h = tap("h", x @ p["W"] + p["b"])
    a = tap("a", jnp.tanh(h))
    return (a**2).sum() / x.shape[0]

def backward(p, x, acts):
    da = 2 * acts["a"] / x.shape[0]
    dh = (1 - acts["a"] ** 2) * da
    return {"a": da, "h": dh, "W": x.T @ dh, "b": dh.sum(0)}

def torch_forward(p, x, tap):
    import torch
    h = tap("h", x @ p["W"] + p["b"])
    a = tap("a", torch.tanh(h))
    return (a**2).sum() / x.shape[0]
"""


def tiny(tmp_path: Path, *edits: tuple[str, str], name: str = "model.py") -> Path:
    """The tiny model file, with ``(old, new)`` text edits applied (each must apply)."""
    text = TINY
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["check", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


# ----------------------------------------------------------------------------- the WaveNet


@pytest.fixture(scope="module")
def wavenet_result(names_txt):
    return jaxninja.cross_check_model(WAVENET, against=("jax", "torch"))


def test_wavenet_passes_against_jax_and_torch(wavenet_result):
    pytest.importorskip("torch")
    result = wavenet_result
    assert result.ok, [(r.name, r.against, r.eps_scale) for r in result.rows if not r.ok]
    names = [r.name for r in result.rows if r.against == "jax"]
    assert len(names) == 44 and names[0] == "logits" and names[-1] == "C"
    assert {"l1.W", "l2.bngain", "l3.bnvar_inv", "out.b", "emb"} <= set(names)
    assert [r.name for r in result.rows if r.against == "torch"] == names
    assert all(r.bound == 32 for r in result.rows if r.against == "jax")  # MODEL_JAX
    assert all(r.bound == 64 for r in result.rows if r.against == "torch")  # MODEL_TORCH
    assert result.n_params == 20073 and result.skipped == ()


def test_wavenet_table_is_the_one_computed_in_one_thread(wavenet_result, monkeypatch):
    """Eagerly the reference's backward runs in a second thread while the manual backward runs
    (jaxninja.background): the table and every array are bit for bit those of the two run in turn
    in one thread (what in_background does where it cannot copy jax's thread-local settings)."""
    monkeypatch.setattr(background, "local_settings", lambda: None)
    alone = jaxninja.cross_check_model(WAVENET, against=("jax", "torch"))
    assert alone.as_json() == wavenet_result.as_json()
    for field in ("reference", "manual", "acts", "autograd"):
        got, want = getattr(wavenet_result, field), getattr(alone, field)
        assert list(got) == list(want), field
        for name in want:
            a, b = np.asarray(got[name]), np.asarray(want[name])
            assert a.dtype == b.dtype and a.shape == b.shape, (field, name)
            assert a.tobytes() == b.tobytes(), (field, name)


@pytest.mark.parametrize(
    ("mistake", "row", "diagnosis"),
    [
        ("dW_transposed", "l3.W", "transposed: mine.T is the gradient"),
        ("bn_dim0", "l2.bngain", "not summed over axis 0"),
        ("dC_set", "C", "scatter without accumulation"),
    ],
)
def test_each_planted_mistake_fails_with_its_diagnosis(
    mistake, row, diagnosis, names_txt, monkeypatch
):
    monkeypatch.setenv("WAVENET_MISTAKES", mistake)
    result = jaxninja.cross_check_model(WAVENET, against=("jax",))
    failing = [r for r in result.rows if not r.ok]
    assert failing and failing[0].name == row  # the first failing row is the mistake
    assert diagnosis in failing[0].diagnosis
    if mistake != "bn_dim0":  # dW and dC feed nothing upstream: their row alone fails
        assert [r.name for r in failing] == [row]


def test_unknown_mistake_is_one_line(names_txt, monkeypatch):
    monkeypatch.setenv("WAVENET_MISTAKES", "nonsense")
    with pytest.raises(ModelError, match=r"running it raised ValueError \(line \d+\): unknown"):
        load_model(WAVENET)


@pytest.mark.slow
def test_wavenet_float64_and_jit(names_txt, x64):
    for kwargs in ({"dtype": "float64"}, {"jit": True}):
        result = jaxninja.cross_check_model(WAVENET, **kwargs)
        assert result.ok, kwargs
    assert result.params["C"].dtype.name == "float32"


# ----------------------------------------------------------------------------- a tiny model


def test_tiny_model_table_and_json(tmp_path, capsys):
    path = tiny(tmp_path)
    status, out, err = check(capsys, "--model", str(path), "--against", "jax")
    assert status == 0 and err == "" and "all rows within contract" in out
    assert [line.split()[0] for line in out.splitlines()[3:7]] == ["a", "h", "W", "b"]
    status, out, _ = check(capsys, "--model", str(path), "--against", "jax", "--json")
    data = json.loads(out)
    assert status == 0 and data["ok"] and data["model"] == str(path)
    assert {"reason", "diagnosis", "eps_scale", "bound"} <= set(data["rows"][0])


def test_tiny_model_torch_column(tmp_path, capsys):
    pytest.importorskip("torch")
    status, out, _ = check(capsys, "--model", str(tiny(tmp_path)), "--json")
    rows = json.loads(out)["rows"]
    assert status == 0 and {r["against"] for r in rows} == {"jax", "torch"} and len(rows) == 8


def test_float64_casts_floating_leaves(tmp_path, capsys, x64_off):
    status, out, _ = check(capsys, "--model", str(tiny(tmp_path)), "--dtype", "float64",
                           "--against", "jax", "--json")  # fmt: skip
    data = json.loads(out)
    assert status == 0 and data["config"]["dtype"] == "float64" and data["ok"]


def test_rows_that_cannot_be_compared_fail_with_their_reason(tmp_path, capsys):
    path = tiny(
        tmp_path,
        ('"W": x.T @ dh', '"W": (x.T @ dh).astype(jnp.float16)'),  # wrong dtype
        ('"b": dh.sum(0)}', '"b": dh.sum(0, keepdims=True), "extra": da}'),  # shape, extra
        ('return {"a": da, ', "return {"),  # "a" has no manual gradient
    )
    status, out, err = check(capsys, "--model", str(path), "--against", "jax", "--json")
    rows = {r["name"]: r for r in json.loads(out)["rows"]}
    assert status == 1 and err == ""
    assert rows["W"]["reason"] == "dtype float16 for a float32 value"
    assert rows["b"]["reason"] == "shape (1, 3) for a (3,) value"
    assert "keepdims" in rows["b"]["diagnosis"]
    assert rows["a"]["reason"] == "no manual gradient" and rows["a"]["eps_scale"] is None
    assert rows["extra"]["reason"].startswith("not a tapped value or parameter")
    assert rows["h"]["ok"] and not any(rows[k]["ok"] for k in ("W", "b", "a", "extra"))


def test_plot_writes_the_error_chart(tmp_path, capsys):
    path = tiny(tmp_path)
    status, _, _ = check(capsys, "--model", str(path), "--against", "jax",
                         "--plot", str(tmp_path / "plots"))  # fmt: skip
    assert status == 0 and (tmp_path / "plots" / "errors.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "plots" / "dlogits.png").exists()  # the lecture's picture only


BAD_FILES = {
    "syntax error": (("def batch(key):", "def batch(key)"), r"model.py:9: syntax error: expected"),
    "missing function": (("def backward(", "def backward_(",), r"defines no backward\(\)"),
    "non-scalar forward": (
        ("return (a**2).sum() / x.shape[0]\n\ndef backward", "return a**2\n\ndef backward"),
        r"scalar floating loss, got shape \(5, 3\)",
    ),
    "backward returns a non-array": (
        ('"b": dh.sum(0)}', '"b": "zero"}'),
        r"backward returned a str for 'b', not an array",
    ),
    "backward returns a list": (
        ('return {"a": da, "h": dh, "W": x.T @ dh, "b": dh.sum(0)}', "return [da]"),
        r"backward must return a dict of gradients by name, got a list",
    ),
    "init raises": (
        ("rng = np.random.default_rng(0)", "rng = np.random.default_rng(0); 1 / 0"),
        r"init\(key\) raised ZeroDivisionError \(line 6\): division by zero",
    ),
    "tap twice": (('a = tap("a", jnp.tanh(h))', 'a = tap("h", jnp.tanh(h))'), r"called twice"),
    "scale_rows names no row": (
        ("def init(key):", 'scale_rows = {"bb": "h"}\n\ndef init(key):'),
        r"scale_rows \{'bb': 'h'\}: row 'bb' is not a row of the table .*: W, a, b, h\)$",
    ),
    "scale_rows borrows from no row": (
        ("def init(key):", 'scale_rows = {"b": "hh"}\n\ndef init(key):'),
        r"scale row 'hh' is not a row of the table",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_model_files_are_one_line_and_exit_2(case, tmp_path, capsys):
    edit, message = BAD_FILES[case]
    status, out, err = check(capsys, "--model", str(tiny(tmp_path, edit)), "--against", "jax")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("jaxninja: error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err


CUSTOM_VJP = """import numpy as np

@jax.custom_vjp
def same(x):
    return x

def _same_bwd(_, g):
    raise ZeroDivisionError("in the backward rule")

same.defvjp(lambda x: (x, None), _same_bwd)
"""


def test_an_error_in_the_reference_backward_is_one_line(tmp_path, capsys):
    """The reference's backward runs in a second thread: an exception from the model's own code
    there (a custom_vjp's backward rule) is still one line naming its line, and exit 2."""
    path = tiny(
        tmp_path,
        ("import numpy as np\n", "import jax\n" + CUSTOM_VJP),
        ('h = tap("h", x @ p["W"] + p["b"])', 'h = tap("h", same(x @ p["W"] + p["b"]))'),
    )
    raising = '    raise ZeroDivisionError("in the backward rule")'
    line = path.read_text().splitlines().index(raising) + 1
    status, out, err = check(capsys, "--model", str(path), "--against", "jax")
    assert status == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert f"forward raised ZeroDivisionError (line {line}): in the backward rule" in err, err


def test_missing_file_and_lecture_flags_are_refused(tmp_path, capsys):
    status, _, err = check(capsys, "--model", str(tmp_path / "nope.py"))
    assert status == 2 and "nope.py" in err and err.count("\n") == 1
    path = str(tiny(tmp_path))
    for flags in (["--n-hidden", "8"], ["--batch-size", "4"], ["--data", "x"], ["--devices", "2"]):
        status, _, err = check(capsys, "--model", path, *flags)
        assert status == 2 and "only for the lecture's model" in err and flags[0] in err
    status, _, err = check(
        capsys, "--model", str(tiny(tmp_path, ("def torch_forward", "def _tf"))), "--against",
        "torch",
    )  # fmt: skip
    assert status == 2 and "needs a torch_forward" in err


@pytest.mark.slow
def test_bad_file_in_a_real_process_has_no_traceback(tmp_path):
    path = tiny(tmp_path, ("def batch(key):", "def batch(key)"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-m", "jaxninja", "check", "--model", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "syntax error" in out.stderr


@pytest.mark.slow
def test_wavenet_check_cli_exit_status(names_txt, tmp_path):
    """The README's two commands, as a process: passes (0), planted mistakes fail (1)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "jaxninja", "check", "--model", str(WAVENET)]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "all rows within contract" in ok.stdout, ok.stderr
    env["WAVENET_MISTAKES"] = "dW_transposed,dC_set"
    bad = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
    rows = {(r["name"], r["against"]): r for r in json.loads(bad.stdout)["rows"]}
    assert bad.returncode == 1
    assert rows[("l3.W", "jax")]["diagnosis"].startswith("transposed")
    assert "scatter without accumulation" in rows[("C", "torch")]["diagnosis"]


def _strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as a strict reader (and the JSON standard) does."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_a_non_finite_loss_is_refused_not_checked(tmp_path, capsys):
    """A forward whose loss is nan or inf: one line, exit 2, no table that looks like a result
    (its rows would compare nan with nan and call them exact)."""
    for loss, shown in (("jnp.log(-(a**2).sum())", "nan"), ("(a**2).sum() / 0.0", "inf")):
        path = tiny(tmp_path, ("return (a**2).sum() / x.shape[0]\n\ndef backward",
                               f"return {loss}\n\ndef backward"))  # fmt: skip
        for extra in ((), ("--json",)):
            status, out, err = check(capsys, "--model", str(path), "--against", "jax", *extra)
            assert status == 2 and out == "", (status, out)
            assert f"the forward's loss is {shown}" in err and len(err.splitlines()) == 1


def test_json_is_valid_when_a_row_holds_nan(tmp_path, capsys):
    """A manual gradient with a NaN: the row fails, and --json stays standard JSON (null)."""
    path = tiny(tmp_path, ('return {"a": da,', 'return {"a": da * jnp.nan,'))
    status, out, _ = check(capsys, "--model", str(path), "--against", "jax", "--json")
    data = _strict_json(out)
    row = next(r for r in data["rows"] if r["name"] == "a")
    assert status == 1 and not row["ok"] and row["eps_scale"] is None


def test_json_safe_replaces_every_non_finite_number():
    from jaxninja.gradcheck.compare import json_safe

    value = {"a": float("nan"), "b": [1.0, float("inf"), {"c": -float("inf")}], "d": "nan", "e": 2}
    assert json_safe(value) == {"a": None, "b": [1.0, None, {"c": None}], "d": "nan", "e": 2}


@pytest.mark.parametrize(
    "edit, what",
    [
        (('return {"a": da,', 'import sys; sys.exit(0)\n    return {"a": da,'), "backward"),
        (('h = tap("h",', 'import sys; sys.exit(0)\n    h = tap("h",'), "forward"),
        (("def init(key):", "import sys\nsys.exit(0)\n\ndef init(key):"), "running it"),
    ],
)
def test_a_model_file_cannot_end_the_check(tmp_path, capsys, edit, what):
    """sys.exit(0) inside a model file (at import, or in a function) is an error naming where,
    exit 2: never exit 0 with nothing checked."""
    status, out, err = check(capsys, "--model", str(tiny(tmp_path, edit)), "--against", "jax")
    assert status == 2 and out == ""
    assert f"{what} called sys.exit(0)" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- --jit modes


def test_jit_rows_come_in_the_backwards_order(tmp_path, capsys):
    """jax.jit returns a dict with sorted keys; the table keeps the backward's order (a, h, W,
    b), so its first failing row is where a mistake starts under --jit too. Bare --jit is jit."""
    path = tiny(tmp_path, ("dh = (1 - acts", "dh = 2 * (1 - acts"))
    status, out, _ = check(capsys, "--model", str(path), "--against", "jax", "--jit", "--json")
    got = json.loads(out)
    assert status == 1 and got["format"] == 3 and got["config"]["jit"] == "jit"
    assert [r["name"] for r in got["rows"]] == ["a", "h", "W", "b"]
    assert {r["mode"] for r in got["rows"]} == {"jit"}
    status, out, _ = check(capsys, "--model", str(path), "--against", "jax", "--jit")
    assert "first failing row h " in out


def test_jit_both_is_one_line_per_row_with_a_column_per_mode(tmp_path, capsys):
    path = tiny(tmp_path, ("dh = (1 - acts", "dh = 2 * (1 - acts"))
    status, out, _ = check(capsys, "--model", str(path), "--jit", "both", "--against", "jax")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("row "))
    assert "eager eps·scale" in lines[header] and "jit eps·scale" in lines[header]
    rows = lines[header + 1 : header + 5]
    assert [line.split()[0] for line in rows] == ["a", "h", "W", "b"]
    assert all(line.count(" ok") + line.count("FAIL") == 2 for line in rows)
    assert "eager, jit: off by a constant factor 2" in rows[1]
    for mode in ("eager", "jit"):
        assert f"jax ({mode}): 1/4 bit-exact, 1/4 within contract" in out
    assert out.count("first failing row h ") == 2
    status, out, _ = check(
        capsys, "--model", str(path), "--jit", "both", "--against", "jax", "--json"
    )
    got = json.loads(out)
    assert status == 1 and got["config"]["jit"] == "both"
    assert [(r["name"], r["mode"]) for r in got["rows"]] == [
        (n, m) for m in ("eager", "jit") for n in ("a", "h", "W", "b")
    ]


def test_jit_both_keeps_the_planted_mistakes_first_row(names_txt, monkeypatch):
    monkeypatch.setenv("WAVENET_MISTAKES", "bn_dim0")
    result = jaxninja.cross_check_model(WAVENET, against=("jax",), jit="both")
    for mode in ("eager", "jit"):
        failing = [r for r in result.rows if r.mode == mode and not r.ok]
        assert failing[0].name == "l2.bngain", mode
