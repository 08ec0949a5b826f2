"""The cells of ``backprop_ninja.ipynb``: the lecture in JAX, in the lecture's order and names.

Every cell calls jaxninja's public API; none copies the package's code, with one deliberate
exception that cannot drift: Exercise 1's solution lines are read from
``jaxninja/lecture/backward.py``
(between its ``--- the lines of Exercise 1`` markers) when the notebook is built. The exercises
notebook is this one with every learner line (``dX = ...``) blanked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BACKWARD = ROOT / "jaxninja" / "lecture" / "backward.py"
START, END = "# --- the lines of Exercise 1", "# --- end of Exercise 1"
LEARNER_LINE = re.compile(r"^(d\w+) = .*$")
BLANK = r"\1 = ...  # your line here"


class Cell(NamedTuple):
    """A notebook cell; ``exercise`` cells have learner lines that the exercises notebook blanks."""

    kind: str  # "markdown" or "code"
    source: str
    exercise: bool = False


def exercise_1_lines() -> str:
    """manual_backward's statements, dedented: the solution of Exercise 1, line for line."""
    text = BACKWARD.read_text(encoding="utf-8")
    body = text.split(START, 1)[1].split(END, 1)[0]
    lines = [line[4:] if line.startswith("    ") else line for line in body.splitlines()[1:]]
    return "\n".join(lines).strip("\n")


def blank(source: str) -> str:
    """Every learner line ``dX = expr`` becomes ``dX = ...  # your line here``."""
    return "\n".join(LEARNER_LINE.sub(BLANK, line) for line in source.splitlines())


def md(text: str) -> Cell:
    return Cell("markdown", text.strip("\n"))


def code(text: str, exercise: bool = False) -> Cell:
    return Cell("code", text.strip("\n"), exercise)


def cmp_lines() -> str:
    """One ``cmp`` per row of Exercise 1, as the lecture writes them (dC with its indices)."""
    from jaxninja.lecture.backward import ROWS

    lines = []
    for name in ROWS:
        extra = ", indices=xb" if name == "C" else ""
        lines.append(f'jaxninja.cmp("{name}", d{name}, ref["{name}"]{extra})')
    return "\n".join(lines)


def derivation_cell(title: str, gradient: str) -> str:
    return f'show_derivation("{title}", "{gradient}")'


def cells() -> list[Cell]:
    """The solutions notebook, top to bottom."""
    return [
        md(INTRO),
        code(IMPORTS),
        md("## Data and vocabulary"),
        code(DATA),
        md(SETUP_MD),
        code(SETUP),
        md(FORWARD_MD),
        code(FORWARD),
        md(EXERCISE_1_MD),
        code(REFERENCE),
        code(exercise_1_lines(), exercise=True),
        code(cmp_lines()),
        md(HPREACT_MD),
        code(HPREACT),
        md(EXERCISE_2_MD),
        code(derivation_cell("Exercise 2: cross-entropy in one go", "dlogits")),
        code(KERNEL_2),
        code(EXERCISE_2, exercise=True),
        code('jaxninja.cmp("logits", dlogits, ref["logits"])'),
        code(DLOGITS_PICTURE),
        md(EXERCISE_3_MD),
        code(derivation_cell("Exercise 3: BatchNorm in one go", "dhprebn")),
        code(KERNEL_3),
        code(EXERCISE_3, exercise=True),
        code('jaxninja.cmp("hprebn", dhprebn, ref["hprebn"])'),
        md(EXERCISE_4_MD),
        code(TRAIN),
        code(LOSS_PLOT),
        md("## Sampling from the model"),
        code(SAMPLE),
        md(CHECK_LAYER_MD),
        code(CHECK_LAYER),
        md(PART5_MD),
        code(PART5_CHECK),
        code(PART5_TRAIN),
        md(NEXT),
    ]


INTRO = """
# Becoming a Backprop Ninja, in JAX

Karpathy's *makemore Part 4* notebook, cell by cell, with [jaxninja](../README.md): the same
MLP (embedding → linear → BatchNorm with Bessel's variance → tanh → linear → cross-entropy), the
same names (`hprebn`, `bnraw`, `dhpreact`, ...; `dX` means ∂loss/∂X), and every gradient
checked against `jax.grad` with `cmp`, which also says *why* a row is wrong.

Run it with `pip install -e '.[notebook]'` and `jupyter lab notebooks/backprop_ninja.ipynb`.
The exercises are in `backprop_ninja_exercises.ipynb`: the same notebook with your lines blank.
"""

IMPORTS = """
import inspect

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import jaxninja
from jaxninja.lecture import generated
from jaxninja.lecture.backward import ROWS, TANH_LINES, matmul_dW, matmul_dx
from jaxninja.gradcheck.lecture_check import exercise_setup
from jaxninja.lecture.model import BN_EPS

DERIVATIONS = jaxninja.__path__[0] + "/../docs/derivations.md"


def show_derivation(title, gradient):
    \"\"\"Display a layer's forward and one gradient's derivation from docs/derivations.md,
    which `python -m derivations` writes from sympy's steps (rendered as math here).\"\"\"
    text = open(DERIVATIONS, encoding="utf-8").read()
    section = text.split("## " + title, 1)[1].split("\\n## ", 1)[0]
    forward = section.split("\\n### ", 1)[0]
    steps = section.split(f"### `{gradient}`", 1)[1].split("\\n### ", 1)[0]
    display(Markdown(f"**{title}**{forward}**`{gradient}`**{steps}"))
"""

DATA = """
data = jaxninja.load_dataset()  # --data, else $JAXNINJA_NAMES, else the default data set
vocab = data.vocab
print(data.describe())
print(f"vocabulary: {vocab.size} tokens, '.' then {vocab.chars!r}")
print("train/val/test contexts:", data.shapes())
"""

SETUP_MD = """
## Parameters and a minibatch (Exercise 1's setup)

The lecture's sizes for the exercises: `n_embd` 10, `n_hidden` 64, a batch of 32. The biases
are drawn non-zero on purpose: zeros could hide a wrong backward.
"""

SETUP = """
cfg = jaxninja.CheckConfig()  # n_embd 10, n_hidden 64, block_size 3, batch 32, seed 42
params, xb, yb = exercise_setup(cfg, data)
C, W1, b1, W2, b2, bngain, bnbias = params
n = xb.shape[0]
print(f"{sum(p.size for p in params)} parameters; batch {n}")
"""

FORWARD_MD = """
## The forward, "chunkated" into small steps

`jaxninja.forward_chunked` is the notebook's forward one line per notebook line; it returns
every intermediate by its notebook name.
"""

FORWARD = """
fwd = jaxninja.forward_chunked(params, xb, yb)
(emb, embcat, hprebn, bnmeani, bndiff, bndiff2, bnvar, bnvar_inv, bnraw, hpreact, h, logits,
 logit_maxes, norm_logits, counts, counts_sum, counts_sum_inv, probs, logprobs, loss) = fwd
print(f"loss {float(loss):.4f}")
"""

EXERCISE_1_MD = """
## Exercise 1: backprop through the whole thing manually

`ref` holds the gradient of the loss with respect to every intermediate, from `jax.grad`: JAX
has no `retain_grad`, so jaxninja adds a zero "probe" to each intermediate, and the gradient
with respect to the probe is exactly dX. Three lines follow autodiff's form so that the match is
*bit-exact*: `dprobs = dlogprobs / probs`, the tanh line `tanh_line(h, dh)` (jax's
`t = dh*(1 - h); t + t*h`) and the matmuls (`matmul_dx`, `matmul_dW`: `dot_general`'s
transposes). `dlogits @ W2.T` is right too, and `cmp` will tell you it agrees to a few eps.
"""

REFERENCE = """
ref = jaxninja.reference_grads(params, xb, yb)  # jax.grad of every intermediate
tanh_line = TANH_LINES["jax"]
"""

HPREACT_MD = """
### Why `hpreact` was not exact

The lecture's tanh line `(1.0 - h**2) * dh` is right in exact arithmetic but rounds twice;
autodiff rounds once (torch's CPU kernel with an FMA, jax with its own form). Here it is against
`jax.grad`, with the true upstream `dh`:
"""

HPREACT = """
jaxninja.cmp("hpreact", TANH_LINES["notebook"](h, ref["h"]), ref["hpreact"])
jaxninja.cmp("hpreact", TANH_LINES["jax"](h, ref["h"]), ref["hpreact"])
"""

EXERCISE_2_MD = """
## Exercise 2: cross-entropy in one go

sympy derived it for a symbolic batch size `n` and proved it (`python -m derivations`); below is
the derivation, then the kernel it generated into `jaxninja/lecture/generated.py`. The lecture's
answer is three lines: `softmax(logits)`, minus 1 at the targets, divided by `n`.
"""

KERNEL_2 = """
print(inspect.getsource(generated.cross_entropy_backward))
"""

EXERCISE_2 = """
dlogits = generated.cross_entropy_backward(logits, yb)
"""

DLOGITS_PICTURE = """
plt.figure(figsize=(6, 6))
plt.imshow(np.asarray(ref["logits"]), cmap="gray")  # the true dlogits (yours, once it is exact)
plt.title("dlogits: the pull down on the target, the push up on every other letter")
plt.show()
"""

EXERCISE_3_MD = """
## Exercise 3: BatchNorm in one go

The same for BatchNorm with Bessel's `n - 1`: the derivation, the generated kernel, then your
line (the lecture's is one long line).
"""

KERNEL_3 = """
print(inspect.getsource(generated.batchnorm_backward))
"""

EXERCISE_3 = """
dhprebn = generated.batchnorm_backward(ref["hpreact"], bnraw, bnvar_inv, bngain)[0]
"""

EXERCISE_4_MD = """
## Exercise 4: putting it all together

Training with the manual backward only (the derived kernels, no autodiff), jit-compiled, 1,000
steps per dispatch. This is a short run at the lecture's sizes (`n_hidden` 200); the full run is
`jaxninja train --out runs/lecture` (200,000 steps), which printed on this project's machine
`train 2.0742  val 2.1132  test 2.1144` (the lecture: train 2.0705, val 2.1099).
"""

TRAIN = """
import tempfile

out = tempfile.mkdtemp(prefix="backprop-ninja-")
run = jaxninja.run_training(jaxninja.TrainConfig(steps=5_000), out, samples=10, log=None)
print({split: round(loss, 4) for split, loss in run.split_losses.items()})
"""

LOSS_PLOT = """
losses = np.asarray(run.result.losses)
plt.plot(np.log10(losses).reshape(-1, 1000).mean(1))
plt.xlabel("thousands of steps")
plt.ylabel("log10 loss")
plt.show()
"""

SAMPLE = """
for name in jaxninja.sample(run.out, 10, seed=7):
    print(name)
"""

CHECK_LAYER_MD = """
## Check a derivation of your own, here

`derivations.check_layer` proves or refutes a gradient you state, for symbolic sizes, and shows
the result here as a table with the math (the engine behind `jaxninja derive --layer`). The
hidden layer's tanh, stated right, then with a classic mistake (tanh's derivative taken at its
input `hpreact` instead of written with its output `h`):
"""

CHECK_LAYER = """
from derivations import Layer, check_layer

tanh_layer = Layer(
    name="tanh",
    title="the hidden layer's tanh",
    axes=("n", "H"),
    inputs={"hpreact": ("n", "H")},
    forward=("h[i, j] = tanh(hpreact[i, j])",),
    upstream="dh",
    claims={"hpreact": "(1 - h**2) * dh"},
)
display(check_layer(tanh_layer))
display(check_layer(tanh_layer.with_claims({"hpreact": "(1 - hpreact**2) * dh"})))
"""

PART5_MD = """
## After the lecture: makemore part 5's WaveNet, trained by its own backward

The next lecture grows this MLP into a hierarchical WaveNet: 8 characters of context, merged
two at a time by three layers of (FlattenConsecutive(2), Linear, BatchNorm1d over (batch,
time), tanh). `examples/models/wavenet.py` holds it with a complete manual backward, one line
per forward line as in Exercise 1, and `:part5` is part 5's own sizes and initialisation. First
its table (every intermediate of its backward against `jax.grad`), then a short run trained *by
that backward* (its BatchNorm running statistics kept as part 5 keeps them), then names from it.
The full 200,000 steps reach part 5's published losses (README, "makemore part 5 reproduced").
"""

PART5_CHECK = """
from jaxninja.gradcheck.model_check import format_model_table

WAVENET = jaxninja.__path__[0] + "/../examples/models/wavenet.py:part5"
print(format_model_table(jaxninja.cross_check_model(WAVENET, against=("jax",))))
"""

PART5_TRAIN = """
part5_run = jaxninja.run_training(
    {"steps": 3_000}, tempfile.mkdtemp(prefix="part5-"), model=WAVENET, samples=10,
    log=None, progress=False,
)
print({split: round(loss, 4) for split, loss in part5_run.split_losses.items()})
for name in part5_run.samples:
    print(name)
"""

NEXT = """
## Where to go next

- `jaxninja derive --layer examples/layernorm.py`: state a layer of your own, prove or refute
  your gradient for symbolic sizes, get its kernel.
- `jaxninja check --model FILE`: the same table as above for your own model and manual backward
  (e.g. makemore part 5's WaveNet in `examples/models/`), and `jaxninja train --model FILE` to
  train it with that backward.
- `jaxninja train --seeds 8`: is the run's validation loss the lecture's, within its noise?
"""
