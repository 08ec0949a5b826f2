"""The lecture's layers through the one engine: every claim proved for symbolic sizes, the
Exercise 1 chains, the exact check at concrete sizes, the generated files, and teeth (wrong
formulas, a wrong forward, a max that is not a shift are each caught).

One module-scoped ``run_all`` (the same work as ``python -m derivations``) serves most tests;
it takes about 10 s of CPU. Its time is not asserted here (no timed unit tests): ``python -m
derivations --check`` prints its wall and CPU seconds and their parts, in CI's log too (the issue's
budget: 15 s CPU).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

sp = pytest.importorskip("sympy")

from derivations import __main__ as derivations_main  # noqa: E402
from derivations import lecture  # noqa: E402
from derivations.__main__ import stale  # noqa: E402
from derivations.build import check_layer, run_all  # noqa: E402
from derivations.engine import derive  # noqa: E402
from derivations.engine.collapse import collapse, pinned, unpinned  # noqa: E402
from derivations.engine.exact import differs  # noqa: E402
from derivations.language.functions import AxisMax  # noqa: E402
from derivations.language.layer import Layer  # noqa: E402
from derivations.language.names import LayerError  # noqa: E402
from derivations.outputs.files import outputs  # noqa: E402


@pytest.fixture(scope="module")
def results():
    return run_all()


def test_every_lecture_claim_is_proved_for_symbolic_sizes(results):
    """simplify(derived - claim) == 0 and the exact point check, for every kernel's claim."""
    verdicts = {f"{c.layer.name}.d{v.key}": v.proof for c in results.layers for v in c.verdicts}
    assert len(verdicts) == 15
    assert all(proof.simplified and proof.point for proof in verdicts.values()), verdicts
    assert results.failures() == []


def test_the_lecture_formulas_are_what_was_proved():
    """The two lecture closed forms, exactly as the issue states them, are the claims."""
    bn = lecture.batchnorm.claim_text["hprebn"].replace(" ", "")
    assert bn == (
        "(n*dhpreact-n*bnraw*sum(bnraw*dhpreact,axis=0,keepdims=True)/(n-1)"
        "-sum(dhpreact,axis=0,keepdims=True))*bngain*bnvar_inv/n"
    )
    assert lecture.cross_entropy.claim_text["logits"] == "(probs - one_hot(y)) / n"


def test_chains_shifts_and_exact_checks(results):
    by_name = {c.layer.name: c for c in results.layers}
    assert {c.layer.name for c in results.layers if c.chains} == {"batchnorm", "cross_entropy"}
    assert all(v.proof.ok for c in results.layers for v in c.chains)
    assert lecture.cross_entropy.shifts == ("logit_maxes",)
    for checked in results.layers:
        for key, sizes in checked.concrete.items():
            assert len(sizes) == 1 and all(min(s.values()) >= 2 for s in sizes), (key, sizes)
    # Bessel's n - 1: the forward is undefined at n = 1, and the proof says so
    assert all("n = 1" in " ".join(v.undefined) for v in by_name["batchnorm"].verdicts)


# ---------------------------------------------------------------- teeth
WRONG_BN = {
    "biased variance (n, not n - 1)": "(n * dhpreact - bnraw * sum(bnraw * dhpreact, axis=0)"
    " - sum(dhpreact, axis=0)) * bngain * bnvar_inv / n",
    "missing mean term": "(n * dhpreact - n / (n - 1) * bnraw * sum(bnraw * dhpreact, axis=0))"
    " * bngain * bnvar_inv / n",
    "flipped sign": "(n * dhpreact + n / (n - 1) * bnraw * sum(bnraw * dhpreact, axis=0)"
    " - sum(dhpreact, axis=0)) * bngain * bnvar_inv / n",
}


def _refuted(layer: Layer, key: str) -> derive.Counterexample:
    """The verdict is a refutation whose counterexample really differs, exactly."""
    verdict = derive.check(layer, key)
    assert not verdict.proof.simplified and not verdict.proof.point
    example = verdict.counterexample
    assert example is not None and differs(example.truth, example.claim)
    return example


@pytest.mark.parametrize("name", list(WRONG_BN))
def test_wrong_batchnorm_formulas_are_refuted(name):
    """Neither simplify nor the exact point check accepts a wrong formula, and the smallest
    counterexample is at a size where the forward is defined (n >= 2)."""
    example = _refuted(lecture.batchnorm.with_claims({"hprebn": WRONG_BN[name]}), "hprebn")
    n = next(size for axis, size in example.sizes.items() if str(axis) == "n")
    assert n >= 2


@pytest.mark.parametrize("wrong", ["probs - one_hot(y)", "(one_hot(y) - probs) / n", "probs / n"])
def test_wrong_cross_entropy_formulas_are_refuted(wrong):
    _refuted(lecture.cross_entropy.with_claims({"logits": wrong}), "logits")


def test_a_biased_variance_forward_does_not_give_the_lecture_formula():
    """The same claim against a forward dividing by n: refuted (so the proof is no
    tautology), while the biased formula is proved for it."""
    lines = list(lecture.batchnorm.lines)
    forward = [line.text for line in lines]
    forward[2] = "bnvar[j] = mean(bndiff[i, j]**2, i)"
    biased = Layer(
        name="batchnorm_biased",
        axes=("n", "H"),
        inputs={"hprebn": ("n", "H"), "bngain": ("H",), "bnbias": ("H",)},
        constants={"eps": lecture.EPS},
        forward=tuple(forward),
        upstream="dhpreact",
        claims={"hprebn": lecture.batchnorm.claim_text["hprebn"]},
    )
    _refuted(biased, "hprebn")
    right = biased.with_claims({"hprebn": WRONG_BN["biased variance (n, not n - 1)"]})
    assert derive.check(right, "hprebn").proof.ok


def test_the_exact_check_rejects_a_wrong_formula():
    """The independent check at concrete sizes (no collapse, no simplify) catches what the
    proof would: it is a second opinion, not a copy of the first."""
    wrong = lecture.batchnorm.with_claims({"hprebn": WRONG_BN["flipped sign"]})
    _, problem = derive.exact_agreement(wrong, "hprebn")
    assert problem is not None and "differs at n=2" in problem


def test_a_wrong_kernel_claim_stops_the_build(monkeypatch):
    """A lecture layer whose claim is wrong fails the build: nothing would be written."""
    wrong = lecture.batchnorm.with_claims({**lecture.batchnorm.claim_text, "hprebn": "dhpreact"})
    checked = check_layer(wrong)
    assert not checked.verdicts[0].proof.ok


def test_a_max_that_is_not_a_shift_is_refused():
    layer = Layer(
        name="scaled",
        axes=("n", "V"),
        inputs={"logits": ("n", "V")},
        forward=("top[i] = max(logits[i, j], j)", "out[i, j] = logits[i, j] * top[i]"),
    )
    assert derive.shift_problems(layer)
    with pytest.raises(LayerError, match="a line of its own"):
        Layer(
            name="inside",
            axes=("n", "V"),
            inputs={"logits": ("n", "V")},
            forward=("out[i] = 2 * max(logits[i, j], j)",),
        )


# ---------------------------------------------------------------- the collapse helper
n = sp.Symbol("n", integer=True, positive=True)
i, p = (sp.Symbol(x, integer=True, nonnegative=True) for x in "ip")


def batch_sum(body):
    return sp.Sum(body, (i, 0, n - 1))


def test_collapse_sums_out_deltas():
    x = sp.IndexedBase("x")
    assert collapse(batch_sum(sp.KroneckerDelta(i, p) * x[i])) == x[p]
    assert collapse(batch_sum(3 * x[p])) == 3 * n * x[p]
    kept = collapse(batch_sum(2 * x[i] * x[p]))
    assert kept == 2 * x[p] * batch_sum(x[i])
    xb = sp.IndexedBase("xb")
    # a delta on an index array does not pin the dummy: the sum stays (a scatter-add)
    assert collapse(batch_sum(sp.KroneckerDelta(p, xb[i]) * x[i])).has(sp.Sum)


def test_the_same_letter_trap_is_why_free_indices_are_distinct():
    """d/dx[i] of sum_i x[i]**2 comes out as 2*sum(x), not 2*x[i]: sympy reads the summation
    dummy as the free index. With a distinct free index p the answer is right."""
    x = sp.IndexedBase("x")
    squares = batch_sum(x[i] ** 2)
    assert collapse(sp.diff(squares, x[i])) == 2 * batch_sum(x[i])  # wrong, and why we avoid it
    assert collapse(sp.diff(squares, x[p])) == 2 * x[p]


def test_a_delta_is_applied_beside_it_both_ways_and_never_across_a_binding():
    x, y = sp.IndexedBase("x"), sp.IndexedBase("y")
    q = sp.Symbol("q", integer=True, nonnegative=True)
    delta = sp.KroneckerDelta(q, y[p])
    assert pinned(delta * sp.exp(x[p, q])) == delta * sp.exp(x[p, y[p]])
    assert unpinned(delta * sp.exp(x[p, y[p]])) == delta * sp.exp(x[p, q])
    assert pinned(sp.log(1 + delta * x[q])) == sp.log(1 + delta * x[y[p]])  # at any depth
    assert pinned(sp.KroneckerDelta(p, q) * x[q]) == sp.KroneckerDelta(p, q) * x[p]
    for bound in (
        delta * sp.Sum(x[p, q], (q, 0, n - 1)),  # the q summed over is another q
        delta * sp.Sum(x[p, q], (p, 0, n - 1)),  # y[p] put inside would read the summed p
    ):
        assert pinned(bound) == bound and unpinned(bound) == bound
    assert unpinned(delta * sp.Sum(x[i, y[p]], (q, 0, n - 1))) == delta * sp.Sum(
        x[i, y[p]], (q, 0, n - 1)
    )  # y[p] -> q inside a sum over q would be captured
    shift = delta * AxisMax(x[p, q] * x[y[p], 0], q, n)  # a max over q binds q as a sum does
    assert pinned(shift) == shift and unpinned(shift) == shift
    assert pinned(delta) == delta and pinned(x[p, q]) == x[p, q]  # no product, no delta: as is


@pytest.mark.parametrize("rewrite", [pinned, unpinned])
def test_a_delta_rewrite_is_an_identity_at_every_integer_point(rewrite):
    """The rewrites change the form, never the value: checked exactly at every assignment of
    p, q, r and y[p] in 0..1 (so every delta is both 0 and 1 somewhere), with rational array
    entries; the sums run over 0..2, and some bind a letter of a delta beside them."""
    x, y = sp.IndexedBase("x"), sp.IndexedBase("y")
    q, r = (sp.Symbol(c, integer=True, nonnegative=True) for c in "qr")
    expr = (
        sp.KroneckerDelta(q, y[p]) * sp.exp(x[p, q]) * x[q, r] * x[y[p], 1]
        + sp.KroneckerDelta(q, r) * sp.KroneckerDelta(r, y[p]) * x[r, q] ** 2
        - sp.KroneckerDelta(p, q) * sp.Sum(x[i, q], (i, 0, 2)) / (1 + x[p, p])
        + sp.KroneckerDelta(q, y[p]) * sp.Sum(x[q, p], (q, 0, 2))
        + sp.KroneckerDelta(q, y[p]) * sp.Sum(x[p, q] * x[y[p], 0], (p, 0, 2))
        + sp.KroneckerDelta(q, y[p]) * sp.Sum(x[y[p], q] * x[q, 0], (q, 0, 2))
    )
    rewritten = rewrite(expr)
    assert rewritten != expr
    entries = {x[a, b]: sp.Rational(a + 2 * b + 1, 7 - a) for a in range(3) for b in range(3)}

    def value(e: sp.Expr, pv: int, qv: int, rv: int, yv: int) -> sp.Expr:
        labels = {y[a]: yv if a == pv else (a + yv + 1) % 3 for a in range(3)}  # y not constant
        e = e.subs({p: pv, q: qv, r: rv}, simultaneous=True).doit()
        return e.xreplace(labels).xreplace(entries).doit()

    for point in itertools.product(range(2), repeat=4):
        assert sp.expand(value(expr, *point) - value(rewritten, *point)) == 0, point


# ---------------------------------------------------------------- the generated files, the CLIs
ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_current(results):
    """What CI's ``python -m derivations --check`` asserts, in process."""
    assert stale(outputs(results), ROOT) == []


def test_check_names_the_stale_file(results, tmp_path, monkeypatch, capsys):
    """--check exits 1 and names each file that differs from a fresh generation."""
    monkeypatch.setattr(derivations_main, "run_all", lambda: results)
    for path, text in outputs(results).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    assert derivations_main.main(["--check", "--root", str(tmp_path)]) == 0
    timing = capsys.readouterr().out  # what the time is measured by, with its parts
    assert re.search(
        r"\(\d+\.\d s wall, \d+\.\d s CPU: derive and prove \d+\.\d s, exact check", timing
    )
    generated = tmp_path / "jaxninja" / "lecture" / "generated.py"
    generated.write_text(generated.read_text() + "# edited by hand\n")
    assert derivations_main.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "jaxninja/lecture/generated.py is stale" in err and "derivations.md" not in err
    assert derivations_main.main(["--root", str(tmp_path)]) == 0  # regenerates
    assert derivations_main.main(["--check", "--root", str(tmp_path)]) == 0


def test_jaxninja_derive_prints_the_report(results, monkeypatch, capsys):
    """``jaxninja derive``: each layer as ``derive --layer`` prints one, chains, timing."""
    from derivations import build
    from jaxninja._cli import main

    monkeypatch.setattr(build, "run_all", lambda: results)
    assert main(["derive"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "forward:",
        "  derived: dhprebn = ",
        "  claim:   dlogits = (probs - one_hot(y)) / n",
        "PROVED for every size n, H >= 1",
        "logit_maxes: a shift",
        "Exercise 1 chain",
        "exact check at n=2, H=2: agrees",
        "== time:",
    ):
        assert needle in out, needle
    assert "REFUTED" not in out and "PROBLEM" not in out
    assert main(["derive", "--brief"]) == 0
    assert "derived:" not in capsys.readouterr().out


def test_a_kernel_reading_a_name_it_is_not_given_is_never_written():
    """tanh_backward given dh alone: its h must come from hpreact, which it lacks."""
    from derivations.lecture import Kernel
    from derivations.outputs.generated_module import render_function

    lacking = Kernel("tanh_backward", lecture.tanh, ("dh",), ("hpreact",), ("hpreact",), "doc")
    with pytest.raises(LayerError, match="reads 'hpreact', not given"):
        render_function(lacking, {})
