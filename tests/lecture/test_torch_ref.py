"""JAX vs torch on identical inputs, and the notebook's hpreact TODO resolved.

Torch's CPU ``tanh_backward`` computes ``dh * (1 - h*h)`` with a fused multiply-add where the CPU
has FMA, so ``1 - h*h`` is rounded once; the notebook's ``(1.0 - h**2) * dh`` rounds twice. The
fixed line ``addcmul(1, h, h, value=-1) * dh`` reproduces autograd bit for bit everywhere.
"""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch_ref  # noqa: E402
from jaxninja.gradcheck.compare import compare_rows  # noqa: E402
from jaxninja.lecture.backward import ROWS, manual_backward  # noqa: E402
from jaxninja.lecture.model import forward_chunked  # noqa: E402
from tests.helpers import COMBOS, NOTEBOOK, ROOT, batch, exact_rows, torch_grads  # noqa: E402

ABOVE_HPREACT = ROWS[: ROWS.index("hpreact")]  # the 11 rows the tanh line cannot touch


@pytest.mark.parametrize(("shape", "dtype"), COMBOS)
def test_jax_vs_torch_within_contract(shape, dtype, x64):
    """<= 64 eps·scale per row (128 for the zero-by-symmetry rows): two libraries' kernels."""
    for seed in range(5):
        params, xb, yb = batch(seed, shape, jnp.dtype(dtype))
        ours = manual_backward(params, forward_chunked(params, xb, yb), xb, yb)
        autograd, torch_manual = torch_grads(params, xb, yb)
        rows = compare_rows(
            {k: np.asarray(v) for k, v in ours.items()}, autograd, "torch", 64.0, 128.0
        )
        assert all(r.ok for r in rows), [(r.name, r.eps_scale) for r in rows if not r.ok]
        assert exact_rows(torch_manual, autograd) == list(ROWS)  # fixed line: 26/26


def test_notebook_tanh_line_on_this_cpu():
    """With FMA kernels exactly the 11 rows above hpreact are exact; without, all 26."""
    params, xb, yb = batch(0, NOTEBOOK, jnp.float32)
    autograd, manual = torch_grads(params, xb, yb, tanh="notebook")
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        assert exact_rows(manual, autograd) == list(ROWS)
    else:
        assert exact_rows(manual, autograd) == list(ABOVE_HPREACT)


def test_notebook_tanh_line_exact_without_fma():
    """ATEN_CPU_CAPABILITY=default dispatches torch's kernels without FMA: the literal line is
    then exact in all 26 rows, and so is the fixed line. Runs in a subprocess (the capability is
    read at import)."""
    code = (
        "import json, jax, jax.numpy as jnp, numpy as np, torch\n"
        "from tests.helpers import torch_grads, exact_rows, batch, NOTEBOOK\n"
        "params, xb, yb = batch(0, NOTEBOOK, jnp.float32)\n"
        "a, m = torch_grads(params, xb, yb, tanh='notebook')\n"
        "_, fixed = torch_grads(params, xb, yb, tanh='fixed')\n"
        "print(json.dumps([torch.backends.cpu.get_cpu_capability(), exact_rows(m, a),\n"
        "                  exact_rows(fixed, a)]))\n"
    )
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    capability, exact, exact_fixed = json.loads(out.strip().splitlines()[-1])
    assert capability == "DEFAULT" and exact == list(ROWS) and exact_fixed == list(ROWS)


def test_torch_init_draws_every_parameter_from_the_seeded_generator():
    """Same seed, same parameters (bngain and bnbias too, unlike the seed notebook)."""
    a, b = torch_ref.init_params(7, 27), torch_ref.init_params(7, 27)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(v.numel() for v in a.values()) == 4137
    assert not torch.equal(a["bngain"], torch_ref.init_params(8, 27)["bngain"])
