"""Exercise 1's step-by-step backward, composed symbolically, equals the one-go closed form.

The notebook backpropagates BatchNorm and cross-entropy one line at a time (``dbnraw``,
``dbndiff``, ``dbnvar_inv``, ... and ``dlogprobs``, ``dprobs``, ``dcounts_sum_inv``, ...). Here
those lines are written in index notation, composed, collapsed and proved equal to the closed
forms of Exercises 2 and 3, for a symbolic batch size.
"""

from __future__ import annotations

import sympy as sp

from derivations import layers as L
from derivations.collapse import canonical, collapse
from derivations.indices import a, b, batch_sum, class_sum, eps, i, j, n, p, q
from derivations.proofs import Proof, prove_equal
from derivations.spec import Identity, rewrite


def batchnorm_chain() -> sp.Expr:
    """dhprebn[p, q] from the notebook's BatchNorm lines, before collapsing."""

    def dbnraw(row, col):
        return L.bngain[col] * L.dhpreact[row, col]

    def dbnvar_inv(col):
        return batch_sum(L.bndiff[i, col] * dbnraw(i, col))

    def dbnvar(col):
        return -sp.Rational(1, 2) * (L.bnvar[col] + eps) ** sp.Rational(-3, 2) * dbnvar_inv(col)

    def dbndiff2(row, col):
        return dbnvar(col) / (n - 1)

    def dbndiff(row, col):
        return L.bnvar_inv[col] * dbnraw(row, col) + 2 * L.bndiff[row, col] * dbndiff2(row, col)

    def dbnmeani(col):
        return -batch_sum(dbndiff(i, col))

    return dbndiff(p, q) + dbnmeani(q) / n


def cross_entropy_chain() -> sp.Expr:
    """dlogits[p, q] from the notebook's cross-entropy lines, before collapsing."""
    counts_sum_inv = sp.IndexedBase("counts_sum_inv")

    def dlogprobs(row, col):
        return -sp.KroneckerDelta(col, L.y[row]) / n

    def dprobs(row, col):
        return dlogprobs(row, col) / L.probs[row, col]

    def dcounts_sum_inv(row):
        return class_sum(L.counts[row, j] * dprobs(row, j))

    def dcounts_sum(row):
        return -(L.counts_sum[row] ** -2) * dcounts_sum_inv(row)

    def dnorm_logits(row, col):
        return L.counts[row, col] * (counts_sum_inv[row] * dprobs(row, col) + dcounts_sum(row))

    dlogit_maxes = -class_sum(dnorm_logits(p, j))
    argmax = sp.IndexedBase("argmax")
    chain = dnorm_logits(p, q) + sp.KroneckerDelta(q, argmax[p]) * dlogit_maxes
    return chain.replace(counts_sum_inv[a], 1 / L.counts_sum[a])


_BN_IDENTITIES = (
    Identity(L.bnvar[a], L.bnvar_inv[a] ** -2 - eps, "bnvar_inv = (bnvar + eps)^(-1/2) > 0"),
    Identity(L.bndiff[a, b], L.bnraw[a, b] / L.bnvar_inv[b], "definition of bnraw"),
)
_CE_IDENTITIES = (Identity(L.probs[a, b], L.counts[a, b] / L.counts_sum[a], "definition of probs"),)


def prove_chains() -> dict[str, Proof]:
    """Both compositions, proved equal to the closed forms the kernels print."""
    bn_layer, ce_layer = L.batchnorm(), L.cross_entropy()
    bn = canonical(collapse(rewrite(batchnorm_chain(), _BN_IDENTITIES)))
    bn = rewrite(bn, bn_layer.facts)
    bn_closed = canonical(collapse(bn_layer.gradients[-1].closed))
    ce = canonical(collapse(rewrite(cross_entropy_chain(), _CE_IDENTITIES)))
    ce = rewrite(ce, ce_layer.facts)
    ce_closed = canonical(collapse(rewrite(ce_layer.gradients[-1].closed, ce_layer.unfold)))
    return {"dhprebn": prove_equal(bn, bn_closed), "dlogits": prove_equal(ce, ce_closed)}
