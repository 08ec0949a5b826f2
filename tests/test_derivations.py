"""The sympy derivations: every proof for symbolic n, the brute force at n = 2..5, the identity
checks, the Exercise 1 chains, and teeth (wrong formulas are rejected by each check).

One module-scoped run of ``run_all`` (the same work as ``python -m derivations``) serves most
tests; it takes about 10 s of CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

sp = pytest.importorskip("sympy")

from derivations import __main__ as derivations_main  # noqa: E402
from derivations import brute  # noqa: E402
from derivations import layers as L  # noqa: E402
from derivations.__main__ import stale  # noqa: E402
from derivations.build import run_all  # noqa: E402
from derivations.collapse import canonical, collapse  # noqa: E402
from derivations.derive import derive_gradient  # noqa: E402
from derivations.files import outputs  # noqa: E402
from derivations.identities import check_identity  # noqa: E402
from derivations.indices import a, batch_sum, i, n, p, q  # noqa: E402
from derivations.proofs import prove_equal  # noqa: E402
from derivations.spec import Gradient, Identity  # noqa: E402

CPU_BUDGET_S = 15.0  # the budget for derivation + proofs + brute force + generation


@pytest.fixture(scope="module")
def timed_results():
    start = time.process_time()
    results = run_all()
    return results, time.process_time() - start


@pytest.fixture(scope="module")
def results(timed_results):
    return timed_results[0]


def test_everything_is_proved_for_symbolic_n(results):
    """simplify(derived - closed) == 0 and the exact point check, for every gradient."""
    proofs = {
        f"{d.layer.name}.{s.gradient.name}": s.proof for d in results.derivations for s in d.steps
    }
    assert len(proofs) == 17
    assert all(proof.simplified and proof.point for proof in proofs.values()), proofs
    assert results.failures() == []


def test_lecture_formulas_are_what_was_proved(results):
    """The two lecture closed forms, exactly as the issue states them."""
    closed = {
        s.gradient.name: s.gradient.closed
        for d in results.derivations
        for s in d.steps
        if d.layer.name in ("batchnorm", "cross_entropy")
    }
    dhpreact, bnraw = L.dhpreact, L.bnraw
    assert closed["dhprebn"] == L.bngain[q] * L.bnvar_inv[q] / n * (
        n * dhpreact[p, q]
        - batch_sum(dhpreact[i, q])
        - n / (n - 1) * bnraw[p, q] * batch_sum(bnraw[i, q] * dhpreact[i, q])
    )
    assert closed["dlogits"] == (L.probs[p, q] - sp.KroneckerDelta(q, L.y[p])) / n
    assert closed["dlogit_maxes"] == 0  # the max shift is safe: proved for any shift


def test_identities_chains_and_brute_force(results):
    checked = [c for cs in results.identities.values() for c in cs]
    assert len(checked) >= 30 and all(c.holds for c in checked)
    assert set(results.chains) == {"dhprebn", "dlogits"}
    assert all(proof.ok for proof in results.chains.values())
    assert {b.n for b in results.brute} == {2, 3, 4, 5}
    assert all(b.ok for b in results.brute) and len(results.brute) == 68


def test_within_time_budget(timed_results):
    """CPU seconds, not wall: the 2-core machine is shared, wall time depends on neighbours."""
    assert timed_results[1] < CPU_BUDGET_S


# ---------------------------------------------------------------- teeth


def _bn_derived():
    layer = L.batchnorm()
    steps = derive_gradient(layer, layer.gradients[-1])
    return layer, steps.derived


def _bn_variant(coefficient, mean_term=1, sign=-1):
    """The lecture's dhprebn with one thing changed."""
    return (
        L.bngain[q]
        * L.bnvar_inv[q]
        / n
        * (
            n * L.dhpreact[p, q]
            - mean_term * batch_sum(L.dhpreact[i, q])
            + sign * coefficient * L.bnraw[p, q] * batch_sum(L.bnraw[i, q] * L.dhpreact[i, q])
        )
    )


WRONG_BN = {
    "biased variance (n, not n - 1)": _bn_variant(sp.S.One),
    "missing mean term": _bn_variant(n / (n - 1), mean_term=0),
    "flipped sign": _bn_variant(n / (n - 1), sign=+1),
}


@pytest.mark.parametrize("name", list(WRONG_BN))
def test_wrong_batchnorm_formulas_are_rejected(name):
    """Neither simplify nor the exact point check accepts a wrong formula."""
    layer, derived = _bn_derived()
    proof = prove_equal(derived, canonical(collapse(WRONG_BN[name])))
    assert not proof.simplified and not proof.point
    assert prove_equal(derived, canonical(collapse(_bn_variant(n / (n - 1))))).ok


def test_wrong_cross_entropy_formulas_are_rejected():
    layer = L.cross_entropy()
    derived = derive_gradient(layer, layer.gradients[-1]).derived
    unfold = {L.probs[p, q]: L.counts[p, q] / L.counts_sum[p]}
    delta = sp.KroneckerDelta(q, L.y[p])
    for wrong in ((L.probs[p, q] - delta), (delta - L.probs[p, q]) / n, L.probs[p, q] / n):
        assert not prove_equal(derived, wrong.xreplace(unfold)).ok


def test_biased_variance_forward_does_not_give_the_lecture_formula():
    """Derive BatchNorm with variance / n: the derivation must disagree with the lecture's
    Bessel formula (so the proof is not a tautology), and agree with the biased one."""
    from derivations.indices import H, class_sum, eps, j, k

    layer = L.batchnorm()
    mean = L._bnmean(j)
    var = batch_sum((L.hprebn[k, j] - mean) ** 2, k) / n  # biased
    hpreact = L.bngain[j] * (L.hprebn[i, j] - mean) * (var + eps) ** sp.Rational(-1, 2)
    naming = list(layer.naming)
    naming[1] = naming[1]._replace(rhs=n * L.bnvar[a])
    biased = layer._replace(
        objective=batch_sum(class_sum(L.dhpreact[i, j] * hpreact, j, H)), naming=tuple(naming)
    )
    steps = derive_gradient(biased, layer.gradients[-1])
    assert not steps.proof.simplified and not steps.proof.point
    assert prove_equal(steps.derived, canonical(collapse(_bn_variant(sp.S.One)))).ok


def test_brute_force_rejects_a_wrong_formula():
    layer = L.batchnorm()
    point = brute._point(layer, 3)
    right = brute.check_gradient(layer, layer.gradients[-1], point)
    wrong = brute.check_gradient(layer, Gradient("dhprebn", L.hprebn[p, q], _bn_variant(1)), point)
    assert right.ok and not wrong.ok and wrong.max_error > 1e-3


def test_a_false_identity_is_caught():
    layer = L.batchnorm()
    false = Identity(batch_sum(L.bnraw[i, a]), sp.S.One, "wrong on purpose")
    assert not check_identity(false, layer).holds
    assert check_identity(layer.facts[0], layer).holds


# ---------------------------------------------------------------- the collapse helper


def test_collapse_sums_out_deltas():
    x = sp.IndexedBase("x")
    assert collapse(batch_sum(sp.KroneckerDelta(i, p) * x[i])) == x[p]
    assert collapse(batch_sum(3 * x[p])) == 3 * n * x[p]
    kept = collapse(batch_sum(2 * x[i] * x[p]))
    assert kept == 2 * x[p] * batch_sum(x[i])
    xb = sp.IndexedBase("xb")
    # a delta on an index array does not pin the dummy: the sum stays (a scatter-add)
    assert collapse(batch_sum(sp.KroneckerDelta(p, xb[i]) * x[i])).has(sp.Sum)


# ---------------------------------------------------------------- the generated files, the CLIs

ROOT = Path(__file__).resolve().parent.parent


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
    generated = tmp_path / "jaxninja" / "generated.py"
    generated.write_text(generated.read_text() + "# edited by hand\n")
    assert derivations_main.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "jaxninja/generated.py is stale" in err and "derivations.md" not in err
    assert derivations_main.main(["--root", str(tmp_path)]) == 0  # regenerates
    assert derivations_main.main(["--check", "--root", str(tmp_path)]) == 0


def test_jaxninja_derive_prints_the_steps(results, monkeypatch, capsys):
    """``jaxninja derive``: forward, derivative, collapsed, derived, closed, proof, timing."""
    from derivations import build
    from jaxninja._cli import main

    monkeypatch.setattr(build, "run_all", lambda: results)
    assert main(["derive"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "forward:",
        "1 derivative:",
        "3 collapsed:",
        "closed form:   dhprebn",
        "Exercise 1 chain",
        "68/68 agree",
        "== time:",
    ):
        assert needle in out, needle
    assert "FAILED" not in out
    assert main(["derive", "--brief"]) == 0
    assert "1 derivative:" not in capsys.readouterr().out


def test_the_same_letter_trap_is_why_free_indices_are_distinct():
    """d/dx[i] of sum_i x[i]**2 comes out as 2*sum(x), not 2*x[i]: sympy reads the summation
    dummy as the free index. With a distinct free index p the answer is right."""
    x = sp.IndexedBase("x")
    squares = batch_sum(x[i] ** 2)
    assert collapse(sp.diff(squares, x[i])) == 2 * batch_sum(x[i])  # wrong, and why we avoid it
    assert collapse(sp.diff(squares, x[p])) == 2 * x[p]
