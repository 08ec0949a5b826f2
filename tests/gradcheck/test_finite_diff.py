"""Finite differences as a third, independent reference: they agree with every correct row and
catch a mistake that autodiff shares (a wrong custom_vjp rule)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxninja
from jaxninja._cli import main
from jaxninja.config import CheckConfig
from jaxninja.errors import FdError
from jaxninja.gradcheck.finite_diff import (
    FULL_LIMIT,
    FULL_MAX_FORWARDS,
    check_full_cost,
    fd_rows,
    full_cost,
)
from jaxninja.models.lecture import lecture_model
from tests.helpers import ROOT


def _lecture(n_embd: int, n_hidden: int, batch_size: int):
    """The lecture's model, params and batch in float64 (inside the caller's x64 scope), and
    jax.grad's gradient of every row (bit-exact to the manual backward, test_check)."""
    cfg = CheckConfig(dtype="float64", n_embd=n_embd, n_hidden=n_hidden, batch_size=batch_size)
    model = lecture_model(cfg, jaxninja.load_dataset())
    k1, k2 = jax.random.split(jax.random.key(42))
    params, batch = model.init(k1), model.batch(k2)
    _, grads = jaxninja.intermediate_grads(model.forward, params, batch)
    return model, params, batch, {k: np.asarray(v) for k, v in grads.items()}


@pytest.mark.parametrize("sizes", [(4, 16, 8)])
def test_every_lecture_row_agrees(sizes):
    with jax.enable_x64(True):
        model, params, batch, grads = _lecture(*sizes)
        rows = fd_rows(model.forward, params, batch, grads)
    assert len(rows) == len(grads) == 26  # every tap and parameter, none left out
    for row in rows:
        assert row.mode == ("full" if np.prod(row.shape) <= FULL_LIMIT else "directions")
        assert row.ok, (row.name, row.error, row.bound)
        # the bound is tight, not a blanket: the worst element uses at most half of it, and the
        # estimate matches jax.grad to ~1e-8 relative (float64 central differences), at the
        # row's scale (a row zero by symmetry borrows its scale row's, as the table does)
        assert row.worst < 0.5, row.name
        if row.mode == "full":
            scale = np.abs(grads[model.scale_rows.get(row.name, row.name)]).max()
            assert np.abs(row.estimate - grads[row.name]).max() / scale < 1e-6, row.name


@pytest.mark.slow
def test_every_lecture_row_agrees_at_the_lectures_sizes():
    test_every_lecture_row_agrees((10, 64, 32))


def _wrong_tanh():
    """tanh with a classic mistake in its custom VJP: (1 - y) instead of (1 - y**2)."""

    @jax.custom_vjp
    def tanh(x):
        return jnp.tanh(x)

    def fwd(x):
        y = jnp.tanh(x)
        return y, y

    def bwd(y, g):
        return ((1 - y) * g,)

    tanh.defvjp(fwd, bwd)
    return tanh


def _tiny(tanh):
    def forward(params, batch, tap):
        x, y = batch
        pre = tap("pre", x @ params["W1"])
        h = tap("h", tanh(pre))
        logits = tap("logits", h @ params["W2"])
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).mean()

    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((5, 7)), "W2": rng.standard_normal((7, 4))}
    batch = (rng.standard_normal((6, 5)), rng.integers(0, 4, 6))
    return forward, params, batch


def test_a_mistake_autodiff_shares_is_caught():
    """jax.grad uses the wrong rule too, so a manual backward copied from it agrees with jax;
    finite differences run only the forward and flag exactly the rows below the tanh."""
    forward, params, batch = _tiny(_wrong_tanh())
    with jax.enable_x64(True):
        _, grads = jaxninja.intermediate_grads(forward, params, batch)
        rows = {r.name: r for r in fd_rows(forward, params, batch, grads)}
    assert [n for n, r in rows.items() if not r.ok] == ["pre", "W1"]
    assert rows["pre"].worst > 1e3  # a wrong formula: far beyond rounding, not at the edge
    assert all(rows[n].ok for n in ("h", "logits", "W2"))


def test_directions_catch_a_mistake_and_pass_the_truth():
    """Rows above the element limit are checked along random unit directions."""
    forward, params, batch = _tiny(jnp.tanh)
    with jax.enable_x64(True):
        _, grads = jaxninja.intermediate_grads(forward, params, batch)
        right = fd_rows(forward, params, batch, grads, full_limit=0)
        wrong = dict(grads, W1=grads["W1"] * 1.01)  # 1 % off: small, still far over the bound
        caught = {r.name: r for r in fd_rows(forward, params, batch, wrong, full_limit=0)}
    assert all(r.mode == "directions" and r.ok for r in right)
    assert [n for n, r in caught.items() if not r.ok] == ["W1"]


def test_full_cost_counts_four_forwards_per_element():
    forward, params, batch = _tiny(jnp.tanh)
    elements = 6 * 7 + 6 * 7 + 6 * 4 + 5 * 7 + 7 * 4  # pre, h, logits, W1, W2
    assert full_cost(forward, params, batch) == 4 * elements


def test_a_float32_forward_is_refused():
    forward, params, batch = _tiny(jnp.tanh)

    def in_float32(params, batch, tap):
        return forward(params, batch, tap).astype(jnp.float32)

    with jax.enable_x64(True):
        _, grads = jaxninja.intermediate_grads(forward, params, batch)
        with pytest.raises(FdError, match="float64"):
            fd_rows(in_float32, params, batch, grads)


def test_a_float32_backward_is_held_to_the_float32_contract():
    """A correct float32 gradient is within the contract's rounding of the float64 oracle (its
    allowance uses float32's eps); the same gradient 0.1 % off is not."""
    forward, params, batch = _tiny(jnp.tanh)
    p32 = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    b32 = (np.asarray(batch[0], np.float32), batch[1])
    _, grads = jaxninja.intermediate_grads(forward, p32, b32)
    assert grads["W1"].dtype == np.float32
    with jax.enable_x64(True):
        assert all(r.ok for r in fd_rows(forward, params, batch, grads))
        off = dict(grads, h=grads["h"] * 1.001)
        assert [r.name for r in fd_rows(forward, params, batch, off) if not r.ok] == ["h"]


def test_fd_rows_in_the_model_table_catch_a_shared_mistake(tmp_path):
    """`check --model --against jax,fd`: the jax rows pass (jax.grad shares the wrong
    custom_vjp rule) and the fd rows below the tanh fail with the diagnosis."""
    from jaxninja.gradcheck.model_check import cross_check_model
    from jaxninja.models.protocol import Model

    forward, params, batch = _tiny(_wrong_tanh())

    def backward(params, batch, acts):
        return jaxninja.intermediate_grads(forward, params, batch)[1]

    model = Model("tiny", lambda key: params, lambda key: batch, forward, backward)
    result = cross_check_model(model, dtype="float64", against=("jax", "fd"))
    rows = {(r.name, r.against): r for r in result.rows}
    assert all(r.ok for (_, against), r in rows.items() if against == "jax")
    failing = [name for (name, against), r in rows.items() if against == "fd" and not r.ok]
    assert failing == ["pre", "W1"]
    assert "central differences" in rows["pre", "fd"].diagnosis
    assert rows["pre", "fd"].eps_scale > rows["pre", "fd"].bound


@pytest.mark.slow  # ~10 s: two backwards and the float64 oracle over the lecture's table
def test_jit_both_compares_each_backward_with_one_oracle(monkeypatch):
    """`--jit both --against fd`: the jitted backward's rows are checked against fd too (it used
    to get none), in the backward's order in each mode, one summary line per mode; the float64
    oracle is built once and its differences shared (fd costs most)."""
    from jaxninja.gradcheck import finite_diff
    from jaxninja.gradcheck.lecture_check import cross_check, format_table

    built = []

    class Counted(finite_diff._Oracle):
        def __init__(self, *args):
            built.append(1)
            super().__init__(*args)

    monkeypatch.setattr(finite_diff, "_Oracle", Counted)
    cfg = CheckConfig(against=("jax", "fd"), n_embd=4, n_hidden=16, batch_size=8)
    result = cross_check(cfg, jit="both")
    assert len(built) == 1
    order = [r.name for r in result.rows if r.against == "jax" and r.mode == "eager"]
    for mode in ("eager", "jit"):
        fd = [r for r in result.rows if r.against == "fd" and r.mode == mode]
        assert [r.name for r in fd] == order and all(r.ok for r in fd), mode
    table = format_table(result)
    assert (
        "fd (eager): 0/26 bit-exact, 26/26" in table and "fd (jit): 0/26 bit-exact, 26/26" in table
    )
    (line,) = [ln for ln in table.splitlines() if ln.split()[:2] == ["hprebn", "fd"]]
    assert line.count(" ok") == 2  # a column per mode on one line


def test_jit_both_fd_rows_catch_a_shared_mistake_in_each_mode():
    """A wrong custom_vjp shared by jax.grad: fd fails the same rows in both modes, and each
    mode's summary names the first of them."""
    from jaxninja.gradcheck.model_check import cross_check_model, format_model_table
    from jaxninja.models.protocol import Model

    forward, params, batch = _tiny(_wrong_tanh())

    def backward(params, batch, acts):
        return jaxninja.intermediate_grads(forward, params, batch)[1]

    model = Model("tiny", lambda key: params, lambda key: batch, forward, backward)
    result = cross_check_model(model, dtype="float64", against=("jax", "fd"), jit="both")
    for mode in ("eager", "jit"):
        failing = [r.name for r in result.rows if r.mode == mode and not r.ok]
        assert failing == ["pre", "W1"], mode
    table = format_model_table(result)
    for mode in ("eager", "jit"):
        assert f"fd ({mode}): " in table
        (line,) = [ln for ln in table.splitlines() if ln.startswith(f"fd ({mode})")]
        assert "first failing row pre" in line


@pytest.mark.slow  # ~7 s; test_every_lecture_row_agrees builds the same table by default
def test_the_lecture_table_has_an_fd_row_per_gradient():
    """`jaxninja check --against jax,fd` in float32 at small sizes: 26 fd rows, all within
    contract, the zero-by-symmetry rows (logit_maxes, b1) at their scale row's scale."""
    from jaxninja.gradcheck.lecture_check import cross_check

    cfg = CheckConfig(against=("jax", "fd"), n_embd=4, n_hidden=16, batch_size=8)
    result = cross_check(cfg)
    fd = [r for r in result.rows if r.against == "fd"]
    assert len(fd) == 26 and all(r.ok for r in fd), [r for r in fd if not r.ok]
    assert {"logit_maxes", "b1"} <= {r.name for r in fd}


BIG = """
import numpy as np

def init(key):
    return {"W": np.random.default_rng(0).standard_normal((30, 40)).astype(np.float32)}

def batch(key):
    return np.random.default_rng(1).standard_normal((40, 30)).astype(np.float32)

def forward(p, x, tap):
    h = tap("h", x @ p["W"])  # 1,600 elements: over FULL_LIMIT
    return (h**2).sum() / 100

def backward(p, x, acts):
    dh = 2 * acts["h"] / 100
    dh = dh.at[3, 5].multiply(2)  # one element wrong
    return {"h": dh, "W": x.T @ dh}
"""


def test_fd_full_checks_every_element_of_a_large_row(tmp_path, capsys):
    """--fd-full: the 1,600-element row is checked element by element (and its one wrong
    element found there); without it, along random directions."""
    path = tmp_path / "big.py"
    path.write_text(BIG, encoding="utf-8")
    for flags, how in (((), "4 random directions"), (("--fd-full",), "every element")):
        status = main(["check", "--model", str(path), "--against", "fd", *flags, "--json"])
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
        assert status == 1 and not rows["h"]["ok"] and f"({how})" in rows["h"]["diagnosis"]


def test_fd_full_is_refused_past_its_cost_and_without_fd(names_txt, capsys):
    wavenet = str(ROOT / "examples" / "models" / "wavenet.py")
    assert main(["check", "--model", wavenet, "--against", "jax,fd", "--fd-full"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "499,748 float64 forwards" in err and "100,000" in err
    assert main(["check", "--model", wavenet, "--fd-full"]) == 2
    assert "only with --against" in capsys.readouterr().err
    assert check_full_cost(FULL_MAX_FORWARDS) == FULL_MAX_FORWARDS


def test_fd_sees_taps_under_an_inner_jit():
    from tests.gradcheck.test_taps import _inner_jit_forward

    rng = np.random.default_rng(0)
    params = {"W": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)}
    batch = jnp.asarray(rng.standard_normal((5, 4)), jnp.float32)
    _, grads = jaxninja.intermediate_grads(_inner_jit_forward, params, batch)
    rows = fd_rows(_inner_jit_forward, params, batch, grads)
    assert sorted(r.name for r in rows) == ["W", "a", "h", "out"] and all(r.ok for r in rows)
