"""The generated backward: the lecture's 26 rows bit-exact against jax.grad, the WaveNet within
contract, deterministic and formatted source, one-line refusals, and the notebook's names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxninja.backward import generate_source
from jaxninja.backward.collect import lecture
from jaxninja.backward.write import checked_backward
from jaxninja.errors import BackwardError

ROOT = Path(__file__).resolve().parents[2]
WAVENET = ROOT / "examples" / "models" / "wavenet.py"


@pytest.fixture(scope="module")
def lecture_model(names_txt):
    return lecture()


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_lecture_rows_bit_exact(lecture_model, dtype):
    """Every rule follows JAX's transpose form and the lecture's forward runs eagerly op by op,
    as jax.grad's backward does: all 26 rows are the same bits."""
    checked = checked_backward(lecture_model, dtype=dtype, against=("jax",))
    rows = checked.check.rows
    assert len(rows) == 26
    assert [r.name for r in rows if not r.exact] == []
    assert checked.source.unproved == []  # logit_maxes's reduce_max rule is proved too


@pytest.mark.slow
def test_lecture_odd_shapes_bit_exact(names_txt):
    """An odd batch (n = 7, not a power of two: 1/n is not an exact scale) and widths."""
    from jaxninja.config import CheckConfig
    from jaxninja.data import load_dataset
    from jaxninja.models.lecture import lecture_model

    cfg = CheckConfig(batch_size=7, n_embd=3, n_hidden=5, block_size=3)
    model = lecture_model(cfg, load_dataset(names_txt, cfg.block_size))
    checked = checked_backward(model, against=("jax",))
    assert [r.name for r in checked.check.rows if not r.exact] == []


def test_an_unproved_max_is_refused_unless_asked(lecture_model):
    """The lecture's logit_maxes line uses reduce_max's rule, PROVED in the shipped table. With
    a table where it is not, the generator refuses in one line naming the primitive and the
    forward line; --allow-unproved reduce_max generates it and the docstring says so."""
    from jaxninja.backward import table

    shipped = table.load()
    keys = {u.key for u in generate_source(lecture_model).uses if u.prim == "reduce_max"}
    assert [shipped[k]["verdict"] for k in keys] == ["PROVED"]
    broken = {**shipped, **{k: {**shipped[k], "verdict": "NOT PROVED"} for k in keys}}
    lookup = table.lookup_in(broken)
    with pytest.raises(BackwardError) as err:
        generate_source(lecture_model, lookup=lookup)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("rule for reduce_max not proved")
    assert "logits.max(1, keepdims=True)" in message
    allowed = generate_source(lecture_model, lookup=lookup, allow_unproved={"reduce_max"})
    assert "UNPROVED (used by request): reduce_max" in allowed.code


def test_wavenet_within_contract(names_txt):
    """WaveNet without its hand-written backward: all 44 rows within contract (eps·scale 32),
    every rule proved (no request)."""
    checked = checked_backward(WAVENET, against=("jax",))
    assert len(checked.check.rows) == 44
    assert checked.check.ok, [r.name for r in checked.check.rows if not r.ok]
    assert checked.source.unproved == []


def test_deterministic_and_named(names_txt):
    """The same forward gives the same bytes, and every tapped value's gradient carries its
    name (l1.hprebn -> dl1_hprebn): no generated names where the user tapped."""
    first = generate_source(WAVENET)
    second = generate_source(WAVENET)
    assert first.code == second.code
    for row in first.rows:
        name = "d" + row.replace(".", "_")
        assert f'"{row}": {name},' in first.code


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_formatted(names_txt, lecture_model):
    """ruff format leaves the generated source as it is."""
    for code in (generate_source(WAVENET).code, generate_source(lecture_model, lookup=_any).code):
        done = subprocess.run(
            ["ruff", "format", "--line-length", "100", "-"],
            input=code, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert done.stdout == code


def _any(statement):
    return None


UNSUPPORTED = """
import jax.numpy as jnp
import numpy as np

def init(key):
    return {"w": np.ones(4, np.float32)}

def batch(key):
    return np.arange(4, dtype=np.float32)

def forward(params, batch, tap):
    h = tap("h", params["w"] * batch)
    return jnp.cumsum(h).sum()

def backward(params, batch, acts):
    return {}
"""


def test_unsupported_primitive_is_one_line(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(UNSUPPORTED)
    done = subprocess.run(
        [sys.executable, "-m", "jaxninja", "backward", "--model", str(path)],
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("jaxninja: error: no rule for cumsum (forward line 13: ")
    assert "jnp.cumsum(h).sum()" in lines[0]


def _env():
    import os

    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def test_a_broken_proof_refuses(names_txt):
    """A table whose entry for a rule the WaveNet uses is NOT PROVED, or holds another
    statement under the key: the generator refuses, it never emits."""
    from jaxninja.backward import statements as st
    from jaxninja.backward import table

    shipped = table.load()
    tanh = next(u.key for u in generate_source(WAVENET).uses if u.prim == "tanh")
    broken = {**shipped, tanh: {**shipped[tanh], "verdict": "NOT PROVED"}}
    with pytest.raises(BackwardError, match="rule for tanh not proved"):
        generate_source(WAVENET, lookup=table.lookup_in(broken))
    statement = {**shipped[tanh]["statement"], "claims": {"x": "dout"}}
    swapped = {**shipped, tanh: {**shipped[tanh], "statement": statement}}
    with pytest.raises(BackwardError, match="statement under this key differs"):
        generate_source(WAVENET, lookup=table.lookup_in(swapped))
    assert st.key(shipped[tanh]["statement"]) == tanh


def test_zero_rows_for_values_without_a_path(names_txt):
    """The generated function returns every floating tap and parameter, so the check's rows
    are all there; values are numpy-comparable arrays."""
    checked = checked_backward(WAVENET, against=("jax",))
    assert set(checked.check.manual) == set(checked.check.reference)
    assert all(np.all(np.isfinite(v)) for v in checked.check.manual.values())


@pytest.mark.parametrize(
    "name",
    [
        "layernorm_mlp",
        "gelu_mlp",
        "neighbour_mlp",
        pytest.param("causal_attention", marks=pytest.mark.slow),
    ],
)
def test_example_models_pass(name, names_txt):
    """LayerNorm MLP, GELU (erf) MLP, neighbour MLP (slice and concatenate), single-head causal
    attention: generated with every rule proved (or CHECKED: the slices' uncut starts), and every
    row within contract against jax.grad."""
    checked = checked_backward(ROOT / "examples" / "models" / f"{name}.py", against=("jax",))
    assert checked.source.unproved == []
    assert checked.check.ok, [r.name for r in checked.check.rows if not r.ok]
    if name == "causal_attention":  # no inner jit above the loss: every row the same bits
        assert [r.name for r in checked.check.rows if not r.exact] == []


def test_wavenet_backward_has_the_hand_written_fast_forms(names_txt):
    """What keeps the generated WaveNet step as fast as the hand-written one (README, "Speed"):
    the loss's picked column is a one-hot mask (a scatter-add runs as a loop on XLA's CPU), and
    the 3-D Linears' dW a 2-D matmul over the B*T rows (not a dot_general over axes (0, 1),
    which XLA precedes with a transposing copy). The only scatter-add left is dC's."""
    code = generate_source(WAVENET).code
    assert code.count(".at[") == 1 and "dC = jnp.zeros_like(C).at[x].add(demb)" in code
    assert "picked = jnp.arange(27) == jnp.where(y < 0, y + 27, y)[..., None]" in code
    assert "dl2_W = l2_flat.reshape((64, 128)).T @ dl2_hprebn.reshape((64, 64))" in code
    assert "dl1_W = l1_flat.reshape((128, 20)).T @ dl1_hprebn.reshape((128, 64))" in code
    assert "(0, 1), (0, 1)" not in code


RAISES = UNSUPPORTED.replace("return jnp.cumsum(h).sum()", "return h.sum() + undefined_name")


def test_an_error_in_the_forward_is_one_line(tmp_path, capsys):
    from jaxninja._cli import main

    path = tmp_path / "m.py"
    path.write_text(RAISES)
    assert main(["backward", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "forward raised NameError (line 13)" in err[0]


@pytest.mark.slow
def test_lecture_rows_equal_the_hand_written_exercise(lecture_model):
    """Row by row against jaxninja/lecture/backward.py's Exercise 1 (both follow JAX's transpose
    forms): the same 26 arrays, bit for bit. The lines differ in form only (README, "The
    backward written for you"): untapped values get op names, a broadcast over a size-1 axis
    is undone by a sum and a reshape, dlogprobs is a one-hot jnp.where rather than a .set."""
    import jax

    from jaxninja.backward.write import compile_backward
    from jaxninja.gradcheck.taps import tapped_forward

    generated = compile_backward(generate_source(lecture_model).code)
    kinit, kbatch = jax.random.split(jax.random.key(42))
    params, batch = lecture_model.init(kinit), lecture_model.batch(kbatch)
    acts = tapped_forward(lecture_model.forward, params, batch).acts
    mine = generated(params, batch, acts)
    hand = lecture_model.backward(params, batch, acts)
    assert set(mine) == set(hand)
    for name in hand:
        assert np.array_equal(np.asarray(mine[name]), np.asarray(hand[name])), name


def test_slice_and_concatenate_rules(names_txt):
    """The neighbour MLP's slices are undone by jnp.pad with zeros (JAX's transpose of slice),
    its concatenation by each part's stretch of the gradient; the rules are in the table, a cut
    start PROVED and an uncut one CHECKED exactly in its stated range."""
    from jaxninja.backward import table

    source = generate_source(ROOT / "examples" / "models" / "neighbour_mlp.py")
    code = source.code
    assert "dbefore = dpairs[:, :, 0:8]" in code and "dafter = dpairs[:, :, 8:16]" in code
    assert "demb = jnp.pad(dafter, ((0, 0), (1, 0), (0, 0)))" in code
    assert "demb += jnp.pad(dbefore, ((0, 0), (0, 1), (0, 0)))" in code
    verdicts = {}
    for use in source.uses:
        if use.prim in ("slice", "concatenate"):
            entry = table.load()[use.key]
            verdicts[use.statement["forward"][0]] = entry["verdict"]
    assert verdicts == {
        "out[i0, i1, i2] = x[i0, i1 + S1, i2]": "PROVED",  # emb[:, 1:] and h[:, -1]
        "out[i0, i1, i2] = x[i0, i1 % N1, i2]": "CHECKED",  # emb[:, :-1]
        "out[i0, i1, i2] = x0[i0, i1, i2 % N] + x1[i0, i1, i2 - (P0)]": "CHECKED",
    }


def test_a_strided_slice_is_refused(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(UNSUPPORTED.replace("jnp.cumsum(h).sum()", "h[::2].sum()"))
    with pytest.raises(BackwardError, match=r"no rule for slice: slice with a stride \(forward"):
        generate_source(path)
