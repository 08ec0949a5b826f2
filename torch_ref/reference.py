"""The notebook in torch: forward with ``retain_grad`` on every intermediate, autograd's 26
gradients, and the notebook's manual backward (with the literal or the fixed tanh line).

Parameters and batches come in as numpy arrays, so JAX and torch see identical float32 or float64
inputs. ``init_params`` draws *every* parameter from one seeded ``torch.Generator``: the seed
notebook draws ``bngain`` and ``bnbias`` from torch's unseeded global generator, which is why its
printed loss (3.3092) cannot be reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

ROWS = (
    "logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
    "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar",
    "bndiff2", "bndiff", "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C",
)  # fmt: skip
PARAMS = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")
INTERMEDIATES = (
    "emb", "embcat", "hprebn", "bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw",
    "hpreact", "h", "logits", "logit_maxes", "norm_logits", "counts", "counts_sum",
    "counts_sum_inv", "probs", "logprobs",
)  # fmt: skip

TANH_LINES = {
    # the notebook: 1 - h**2 rounded, then times dh
    "notebook": lambda h, dh: (1.0 - h**2) * dh,
    # torch's tanh_backward kernel computes dh * (1 - h*h) with a fused multiply-add on FMA CPUs
    "fixed": lambda h, dh: torch.addcmul(torch.ones_like(h), h, h, value=-1) * dh,
}


def init_params(
    seed: int,
    vocab_size: int,
    n_embd: int = 10,
    n_hidden: int = 64,
    block_size: int = 3,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The notebook's initialisation, every tensor from ``torch.Generator().manual_seed(seed)``
    (or from ``generator``, which the caller may go on drawing batches from, as the notebook
    does)."""
    g = torch.Generator().manual_seed(seed) if generator is None else generator
    fan_in = n_embd * block_size

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g, dtype=dtype)

    return {
        "C": randn(vocab_size, n_embd),
        "W1": randn(fan_in, n_hidden) * (5 / 3) / fan_in**0.5,
        "b1": randn(n_hidden) * 0.1,
        "W2": randn(n_hidden, vocab_size) * 0.1,
        "b2": randn(vocab_size) * 0.1,
        "bngain": randn(1, n_hidden) * 0.1 + 1.0,
        "bnbias": randn(1, n_hidden) * 0.1,
    }


def to_torch(params: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Copy numpy (or JAX) parameters into fresh leaf tensors that require grad."""
    return {k: torch.tensor(np.asarray(params[k])).requires_grad_(True) for k in PARAMS}


def forward(
    p: Mapping[str, torch.Tensor], xb: np.ndarray | torch.Tensor, yb: np.ndarray | torch.Tensor
) -> dict[str, torch.Tensor]:
    """The notebook's chunked forward; every intermediate retains its grad. Adds "loss"."""
    xb, yb = torch.tensor(np.array(xb)).long(), torch.tensor(np.array(yb)).long()
    n = xb.shape[0]
    emb = p["C"][xb]  # embed the characters into vectors
    embcat = emb.view(emb.shape[0], -1)  # concatenate the vectors
    hprebn = embcat @ p["W1"] + p["b1"]  # hidden layer pre-activation
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)  # Bessel's correction
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = p["bngain"] * bnraw + p["bnbias"]
    h = torch.tanh(hpreact)
    logits = h @ p["W2"] + p["b2"]
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), yb].mean()
    out = {name: value for name, value in locals().items() if name in INTERMEDIATES}
    for t in out.values():
        if t.requires_grad:
            t.retain_grad()
    return out | {"loss": loss, "xb": xb, "yb": yb}


def autograd_grads(
    p: Mapping[str, torch.Tensor], fwd: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``loss.backward()`` and collect the 26 gradients, notebook order."""
    for t in p.values():
        t.grad = None
    fwd["loss"].backward()
    tensors = dict(fwd) | dict(p)
    return {name: tensors[name].grad for name in ROWS}


@torch.no_grad()
def manual_backward(
    p: Mapping[str, torch.Tensor],
    fwd: Mapping[str, torch.Tensor],
    tanh: str = "fixed",
    python_loop_dC: bool = False,
) -> dict[str, torch.Tensor]:
    """The notebook's Exercise 1 in torch. ``tanh`` picks the literal notebook line or the fix;
    ``dprobs`` is ``dlogprobs / probs`` as in torch's LogBackward (the notebook's
    ``(1.0 / probs) * dlogprobs`` is only bit-exact when n is a power of two)."""
    f = {k: v.detach() for k, v in fwd.items()}
    C, W1, W2, bngain = (p[k].detach() for k in ("C", "W1", "W2", "bngain"))
    xb, yb = f["xb"], f["yb"]
    n = xb.shape[0]
    dlogprobs = torch.zeros_like(f["logprobs"])
    dlogprobs[range(n), yb] = -1.0 / n
    dprobs = dlogprobs / f["probs"]
    dcounts_sum_inv = (f["counts"] * dprobs).sum(1, keepdim=True)
    dcounts = f["counts_sum_inv"] * dprobs
    dcounts_sum = (-(f["counts_sum"] ** -2)) * dcounts_sum_inv
    dcounts += dcounts_sum
    dnorm_logits = f["counts"] * dcounts
    dlogits = dnorm_logits.clone()
    dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)
    dlogits[range(n), f["logits"].max(1).indices] += dlogit_maxes.view(-1)
    dh = dlogits @ W2.T
    dW2 = f["h"].T @ dlogits
    db2 = dlogits.sum(0)
    dhpreact = TANH_LINES[tanh](f["h"], dh)
    dbngain = (f["bnraw"] * dhpreact).sum(0, keepdim=True)
    dbnraw = bngain * dhpreact
    dbnbias = dhpreact.sum(0, keepdim=True)
    dbndiff = f["bnvar_inv"] * dbnraw
    dbnvar_inv = (f["bndiff"] * dbnraw).sum(0, keepdim=True)
    dbnvar = (-0.5 * (f["bnvar"] + 1e-5) ** -1.5) * dbnvar_inv
    dbndiff2 = (1.0 / (n - 1.0)) * torch.ones_like(f["bndiff2"]) * dbnvar
    dbndiff += 2 * f["bndiff"] * dbndiff2
    dbnmeani = (-dbndiff).sum(0, keepdim=True)
    dhprebn = dbndiff.clone()
    dhprebn += (1.0 / n) * dbnmeani
    dembcat = dhprebn @ W1.T
    dW1 = f["embcat"].T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(f["emb"].shape)
    dC = torch.zeros_like(C)
    if python_loop_dC:  # the notebook's loop, kept for the benchmark
        for k in range(xb.shape[0]):
            for j in range(xb.shape[1]):
                dC[xb[k, j]] += demb[k, j]
    else:
        dC.index_put_((xb,), demb, accumulate=True)
    grads = locals()
    return {name: grads["d" + name] for name in ROWS}
