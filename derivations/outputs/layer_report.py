"""``jaxninja derive --layer FILE``: check a stated layer end to end and say what was found.

Derive every input's gradient for symbolic sizes; prove each claim or refute it (the simplified
difference and the smallest counterexample, both values printed); write the JAX kernel of the
derived gradients; verify it against ``jax.vjp`` in float64; print the time each part took.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import sympy as sp

from derivations.engine import budget, derive, exact
from derivations.engine.derive import Counterexample, Verdict, check, wrt
from derivations.language.claims import is_index_claim
from derivations.language.layer import Layer, load_layer
from derivations.language.names import LayerError
from derivations.outputs import kernel, kernelfile, verify_float32
from derivations.outputs import verify as verifier  # 'verify' is run_layer's flag
from jaxninja.errors import JaxninjaError


class Report(NamedTuple):
    """Everything one run found, its text and its verdict (:func:`verdict`)."""

    layer: Layer
    verdicts: tuple[Verdict, ...]
    verified: list[verifier.Verified]
    kernel: Path | None  # where the kernel was written (None: not written)
    problem: str | None  # why the kernel could not be generated or run (None: it ran)
    seconds: dict[str, float]
    body: str  # the report, every line but the verdict
    kernel_text: str | None = None  # the kernel as generated (written only when ``ok``)
    out: Path | None = None  # where it was asked to be written
    unwritten: str | None = None  # why a verified kernel could not be written (a full disk)
    unsafe: tuple[verify_float32.Unsafe, ...] = ()  # gradients unsafe in float32 at large inputs
    allow_unsafe: bool = False  # --allow-unsafe: an unsafe kernel is still written, exit 0

    @property
    def not_proved(self) -> list[str]:
        """Inputs whose claim was not proved (refuted, or undecided); a claim CHECKED exactly
        up to stated sizes (shifted reads) is not among them."""
        return [
            v.key for v in self.verdicts if v.proof is not None and not v.proof.ok and not v.checked
        ]

    @property
    def verified_ok(self) -> bool:
        """The kernel ran and is within the bound at every size."""
        return self.problem is None and bool(self.verified) and all(v.ok for v in self.verified)

    @property
    def ok(self) -> bool:
        """Every claim proved, the kernel within the bound at every size and numerically safe
        in float32 (or ``allow_unsafe``): exit status 0. A layer with shifted reads has no
        kernel: its claims alone decide (PROVED or CHECKED)."""
        if self.layer.exact_only:
            return not self.not_proved
        safe = not self.unsafe or self.allow_unsafe
        return not self.not_proved and self.verified_ok and safe and self.unwritten is None

    @property
    def status(self) -> int:
        """The exit status ``derive`` ends with: 0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    @property
    def verdict(self) -> str:
        """The one line that ends every run (:func:`verdict`)."""
        return verdict(self)

    @property
    def text(self) -> str:
        """The whole report, the verdict its last line."""
        return self.body + self.verdict + "\n"


def _value(value: sp.Expr) -> str:
    """An exact value as written when short, else its 50 certified digits."""
    text = sp.sstr(value)
    if value.is_Rational and len(text) <= 60:
        return f"{text}  (= {sp.N(value, 12)})"
    digits = exact.certified(value)
    shown = sp.N(digits, exact.DIGITS) if digits is not None else sp.N(value, 12)
    return f"{shown}  (50 digits, certified by evalf)" if digits is not None else f"{shown}"


def _example_lines(
    layer: Layer, key: str, example: Counterexample | None, searched: str = ""
) -> list[str]:
    if example is None:
        return [f"  counterexample: none found in {searched}: undecided"]
    sizes = ", ".join(f"{k}={v}" for k, v in example.sizes.items())
    inputs = ", ".join(f"{k}={v}" for k, v in example.inputs.items())
    consts = ", ".join(f"{k}={v}" for k, v in layer.constant_values.items())
    lines = [f"  counterexample at the smallest sizes {sizes}:"]
    if example.skipped:
        lines.append(f"    (claim undefined, skipped at: {'; '.join(example.skipped)})")
    lines += [
        f"    exact inputs: {inputs}" + (f"; {consts}" if consts else ""),
        f"    true  d{example.element} = {_value(example.truth)}",
        f"    claim d{example.element} = {_value(example.claim)}",
    ]
    return lines


def _sizes_text(layer: Layer) -> str:
    sizes = ", ".join(map(str, layer.axes))
    consts = ", ".join(f"{k} = {v}" for k, v in layer.constant_values.items())
    return f"every size {sizes} >= 1" + (f", at {consts}" if consts else "")


def fate(verdict_: Verdict) -> str | None:
    """One claim's fate in a word: PROVED, CHECKED (exact at every size of a stated range,
    not for every size), REFUTED (a counterexample, or a shape numpy gives only where sizes
    coincide), NOT PROVED; None without a claim. Only ``proof.ok`` is PROVED: a CHECKED claim
    has ``proof.ok`` False and ``checked`` set, so nothing that reads ``proof.ok`` (the kernel's
    printing, ``--check``) can take it for a proof."""
    if verdict_.proof is None:
        return None
    if verdict_.proof.ok:
        return "PROVED"
    if verdict_.counterexample is not None or verdict_.mismatch is not None:
        return "REFUTED"
    return "CHECKED" if verdict_.checked else "NOT PROVED"


def _claims_part(verdicts) -> str:
    """``PROVED 3/3``, ``REFUTED: dW (1 of 3)``, ``no claims (3 gradients derived)``."""
    fates = {v.key: fate(v) for v in verdicts}
    claimed = [k for k, f in fates.items() if f is not None]
    if not claimed:
        return f"no claims ({len(fates)} gradient{'s' * (len(fates) != 1)} derived)"
    total = len(claimed)
    failed = [
        f"{word}: {', '.join('d' + k for k in keys)} ({len(keys)} of {total})"
        for word in ("REFUTED", "NOT PROVED")
        if (keys := [k for k in claimed if fates[k] == word])
    ]
    if failed:
        return "; ".join(failed)
    counts = [
        f"{word} {n}/{total}"
        for word in ("PROVED", "CHECKED")
        if (n := sum(fates[k] == word for k in claimed))
    ]
    ranges = [f"d{v.key} exactly for {v.checked}" for v in verdicts if fate(v) == "CHECKED"]
    return ", ".join(counts) + (f" ({'; '.join(ranges)})" if ranges else "")


def _kernel_part(report: Report) -> str:
    """What failed in the kernel, or ''."""
    if report.layer.exact_only:
        return "kernel not generated (shifted reads or declared sizes)"
    if report.problem is not None:
        return f"kernel failed: {report.problem}"
    if report.kernel_text is None:
        return ""  # not generated: a claim is not proved
    if not report.verified:
        return "kernel not verified"
    over = [v for v in report.verified if not v.ok]
    if over:
        worst = max(over, key=lambda v: max([*v.errors.values(), *v.torch_errors.values()]))
        name, error = max(
            [*worst.errors.items(), *((f"{k} (torch)", e) for k, e in worst.torch_errors.items())],
            key=lambda pair: pair[1],
        )
        sizes = ", ".join(f"{k}={v}" for k, v in worst.sizes.items())
        return (
            f"kernel OVER THE BOUND at {len(over)} of {len(report.verified)} sizes "
            f"({name} {error:.3g} eps·scale at {sizes})"
        )
    return ""


def verdict(report: Report) -> str:
    """The one line that ends every run, with its exit status: ``PROVED 3/3, kernel written:
    k.py (exit 0)``, ``REFUTED: dW (1 of 3); kernel not written (exit 1)``."""
    parts = [_claims_part(report.verdicts)]
    kernel = _kernel_part(report)
    if kernel:
        parts.append(kernel)
    if report.unsafe:
        names = verify_float32.input_names(report.layer)
        found = verify_float32.summary(report.unsafe, names)
        allowed = " (allowed by --allow-unsafe)" if report.allow_unsafe else ""
        parts.append(f"numerically unsafe{allowed}: {found}")
    if report.unwritten is not None:
        parts.append(f"kernel not written: {report.unwritten}")
    if report.layer.exact_only:
        end = ""  # the kernel part said it: not generated for shifted reads
    elif report.kernel is not None:
        end = f", kernel written: {report.kernel}"
    elif report.out is not None and report.unsafe and not report.not_proved:
        end = "; kernel not written (--allow-unsafe writes it)"
    elif report.out is not None:
        end = "; kernel not written" if report.unwritten is None else ""
    elif report.ok:
        end = ", kernel verified (not kept: name a file with --out)"
    else:
        end = ""
    return "; ".join(parts) + end + f" (exit {report.status})"


def verdict_lines(layer: Layer, verdict: Verdict, derived: bool = True) -> list[str]:
    """What was found for one input: the derived gradient in the forward's names (unless
    ``derived`` is False), the claim, and its verdict with the counterexample."""
    key = verdict.key
    pairs = kernel.namings(layer, layer.free_sizes(layer.inputs[key]))
    lines = [f"-- d{key} = d objective / d {sp.sstr(wrt(layer, key))}"]
    if derived:
        named = kernel.in_names(verdict.derived, layer, pairs)
        lines.append(f"  derived: d{key} = {sp.sstr(named)}")
    if verdict.proof is None:
        lines.append("  claim:   none given")
    else:
        text = layer.claim_text[key].strip()
        shown = text if is_index_claim(text) else f"d{key} = {text}"
        lines.append(f"  claim:   {shown}")
        if layer.exact_only:
            lines += _shifted_lines(layer, verdict)
        elif verdict.proof.ok:
            where = _sizes_text(layer)
            if verdict.undefined:
                where += " except where undefined: " + "; ".join(verdict.undefined)
            how = (
                "away from the kinks: every kinked function written exactly as steps, "
                "derived - claim decided 0 case by case, and an exact random-rational point "
                "off the kinks agrees"
                if verdict.kinked
                else "simplify(derived - claim) == 0 and an exact random-rational point agrees"
            )
            lines.append(f"  PROVED for {where}: {how}")
        elif verdict.mismatch is not None:  # read as numpy reads it, the shape is wrong
            lines.append(f"  REFUTED: {verdict.mismatch.reason}")
            lines.append(f"  counterexample: {verdict.mismatch.example}")
        elif verdict.checked:
            lines.append(
                f"  CHECKED exactly for {verdict.checked}: every element against the exact "
                "derivative at every size in that range (not a proof for other sizes)"
            )
        elif verdict.counterexample is not None:
            lines.append("  REFUTED: the claim is not the gradient")
            difference = kernel.named(verdict.difference, pairs)
            lines.append(f"  derived - claim = {sp.sstr(difference)}")
            lines += _example_lines(layer, key, verdict.counterexample)
        else:
            lines.append("  NOT PROVED: simplify does not reach zero, yet no counterexample")
            difference = kernel.named(verdict.difference, pairs)
            lines.append(f"  derived - claim = {sp.sstr(difference)}")
            lines += _example_lines(layer, key, None, verdict.searched)
        if not verdict.proof.ok and verdict.undefined:
            lines.append("  undefined: " + "; ".join(verdict.undefined))
    lines.append(f"  ({verdict.seconds:.2f} s)")
    return lines


def _shifted_lines(layer: Layer, verdict: Verdict) -> list[str]:
    """A claim about shifted reads, decided by the exact check at every size up to the
    stated bounds (:mod:`derivations.engine.shifts`): CHECKED there, REFUTED, or NOT PROVED."""
    if verdict.mismatch is not None:  # read as numpy reads it, the shape is wrong
        return [
            f"  REFUTED: {verdict.mismatch.reason}",
            f"  counterexample: {verdict.mismatch.example}",
        ]
    consts = ", ".join(f"{k} = {v}" for k, v in layer.constant_values.items())
    if verdict.proof is not None and verdict.proof.ok:
        declared = ", ".join(f"{k} = {v}" for k, v in layer.derived_sizes.items())
        return [
            f"  PROVED for {_sizes_text(layer)}"
            + (f" (so {declared} >= 1)" if declared else "")
            + ": the shifted reads' deltas summed out exactly, simplify(derived - claim) == 0 "
            "and exact random-rational points agree",
            f"  and CHECKED exactly for {verdict.checked}: derived - claim is 0 for all input "
            "values at every size combination up to these",
        ]
    if verdict.checked:
        return [
            f"  CHECKED exactly for {verdict.checked}"
            + (f", at {consts}" if consts else "")
            + ": at every size combination up to these (every size >= 1), derived - claim "
            "is 0 for all input values (not proved beyond them)"
        ]
    if verdict.counterexample is not None:
        return ["  REFUTED: the claim is not the gradient"] + _example_lines(
            layer, verdict.key, verdict.counterexample
        )
    return [f"  NOT PROVED: {verdict.searched}"]


def _kernel_text(layer: Layer, verdicts, source: str) -> tuple[str | None, str | None]:
    """The kernel's text (each gradient from its proved claim, else the derived form), or
    (None, why it has no array form)."""
    proved = {v.key for v in verdicts if v.proof is not None and v.proof.ok}
    # a claim undefined where the forward is defined (a 0/0 at n = 1) is not printed
    partial = {v.key for v in verdicts if any(u.startswith("the claim") for u in v.undefined)}
    printed = proved - partial
    gradients = {v.key: v.claim if v.key in printed else v.derived for v in verdicts}
    origins = {
        key: "your claim, proved equal to the derived gradient"
        if key in printed
        else "the derived gradient (your claim, proved, is undefined at some sizes)"
        if key in proved
        else "the derived gradient"
        for key in gradients
    }
    try:
        text = kernel.render_kernel(layer, gradients, source, origins, frozenset(printed))
    except LayerError as err:
        return None, str(err)
    return text, None


def _verified(layer: Layer, text: str, seconds: dict) -> tuple[list, list, str | None]:
    """The kernel ``text`` loaded from a temporary file (never from ``--out``: nothing is
    written there before it passed), verified, and (when within the bound) checked for float32
    safety at large inputs: (results, unsafe gradients, None), or ([], [], why it fails)."""
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{layer.name}_kernel.py"
            path.write_text(text, encoding="utf-8")
            module = kernel.load_kernel(path, layer.name)
        verified = verifier.verify(layer, module)
        seconds["verify"] = time.perf_counter() - start
        start = time.perf_counter()
        unsafe = verify_float32.unsafe(layer, module, text) if all(v.ok for v in verified) else []
        seconds["float32 safety"] = time.perf_counter() - start
        return verified, unsafe, None
    except Exception as err:  # a kernel that does not run is reported, not traced back
        seconds.setdefault("verify", time.perf_counter() - start)
        first = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else ""
        return [], [], f"the kernel does not run: {type(err).__name__}: {first}"


def run_layer(
    layer: Layer,
    out: Path | None,
    source: str = "",
    verify: bool = True,
    allow_unsafe: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Derive, prove/refute, generate, verify, and only then write the kernel into ``out``
    (None: not kept): a kernel is written only by a run whose :attr:`Report.ok` holds, and
    atomically. ``verify=False``: a caller that checks the kernel itself (the report is then
    not ok, nothing is written, the text is in :attr:`Report.kernel_text`). ``allow_unsafe``:
    a kernel unsafe in float32 at large inputs (:mod:`derivations.outputs.verify_float32`) is
    still ok.
    Derivation, proofs and printing run within :data:`derivations.engine.budget.SECONDS`, saying
    where they are every few seconds through ``progress`` (one line each)."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with budget.limited(layer.name, progress) as step:
        step("checking the shifts")
        layer = derive.with_max_reductions(layer)
        verdicts = []
        for number, key in enumerate(layer.differentiable, 1):
            claim = " and proving its claim" if key in layer.claim_text else ""
            step(f"deriving d{key}{claim} ({number} of {len(layer.differentiable)})")
            verdicts.append(check(layer, key))
        seconds["derive + prove/refute"] = time.perf_counter() - start
        start = time.perf_counter()
        # a claim not proved means no kernel is written: neither printed nor verified (the
        # verification's compilation was most of a refuted run's time)
        refused = any(fate(v) in ("REFUTED", "NOT PROVED") for v in verdicts)
        text, problem = None, None
        if not refused and not layer.exact_only:  # no array form for a shifted read
            step("printing the kernel")
            text, problem = _kernel_text(layer, verdicts, source)
        step("printing the derived forms")
        head = _head(layer, verdicts)
        seconds["generate"] = time.perf_counter() - start
    verified: list[verifier.Verified] = []
    unsafe: list[verify_float32.Unsafe] = []
    if text is not None and verify:
        verified, unsafe, problem = _verified(layer, text, seconds)
    report = Report(layer, tuple(verdicts), verified, None, problem, seconds, "", text, out)
    report = report._replace(unsafe=tuple(unsafe), allow_unsafe=allow_unsafe)
    if report.ok and out is not None and text is not None:  # shifted reads: no kernel
        try:
            kernelfile.write_kernel(out, text)
            report = report._replace(kernel=out)
        except JaxninjaError as err:
            report = report._replace(unwritten=str(err))
    return report._replace(body=_body(report, verify, head))


def _head(layer: Layer, verdicts) -> list[str]:
    """The report's first lines: the layer, its forward, each gradient's verdict."""
    lines = [f"== {layer.title} (layer {layer.name}; sizes {', '.join(map(str, layer.axes))})"]
    lines += ["forward:"] + [f"  {line.text}" for line in layer.lines]
    for verdict_ in verdicts:
        lines += verdict_lines(layer, verdict_)
    return lines


def _body(report: Report, verify: bool, head: list[str]) -> str:
    """Every line of the report but the verdict (``head``: :func:`_head`'s lines)."""
    layer, verified, problem = report.layer, report.verified, report.problem
    lines = list(head)
    if layer.exact_only:
        lines.append("-- kernel: not generated (no array form for shifted reads or declared sizes)")
    elif report.kernel_text is None and problem is None:
        lines.append(
            "-- kernel: not generated, as a claim is not proved (without that claim the kernel "
            "prints its derived gradient)"
        )
    elif problem is not None:
        lines.append(f"-- kernel: NOT GENERATED: {problem}")
    elif not verify:
        lines.append("-- kernel: not verified here (the caller checks it)")
    else:
        lines.append(f"-- kernel: {layer.name}_forward, {layer.name}_backward")
        torch = " and torch autograd" if verified and verified[0].torch_errors else ""
        lines.append(
            f"-- kernel vs jax.vjp{torch} of the forward as stated, float64, one axis varied "
            f"at a time, the others at {verifier.OTHER_SIZE} (max |error| / (eps * scale), "
            "scale: max |gradient| or of its printed form with every term in absolute value; "
            f"bound {verifier.BOUND:g}):"
        )
    for result in verified:
        sizes = ", ".join(f"{k}={v}" for k, v in result.sizes.items())
        errors = ", ".join(f"{k} {v:.2f}" for k, v in result.errors.items())
        if result.torch_errors:
            worst = max(result.torch_errors.values())
            errors += f"; torch worst {worst:.2f}"
        lines.append(f"  {sizes}: {errors}: {'ok' if result.ok else 'OVER THE BOUND'}")
    if report.verified_ok:
        lines.append(
            "-- kernel in float32 vs jax.vjp of the forward in float64, inputs scaled to every "
            f"|value| up to {verify_float32.SCALES[-1]} (unsafe: not finite, or off by more than "
            f"{verify_float32.TOLERANCE:g} of the gradient's scale, where the reference is finite):"
        )
        names = verify_float32.input_names(layer)
        if report.unsafe:
            lines.append(f"  numerically unsafe: {verify_float32.summary(report.unsafe, names)}")
        if not report.unsafe:
            lines.append(f"  safe at every {names} up to {verify_float32.SCALES[-1]}")
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items())
    lines.append(f"== time: {sum(report.seconds.values()):.2f} s ({parts})")
    return "\n".join(lines) + "\n"


def run_file(
    path: str | Path,
    out: str | Path | None = None,
    allow_unsafe: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """:func:`run_layer` on the layer a file defines; the paths are checked first
    (:mod:`derivations.outputs.kernelfile`: a regular layer file, an ``--out`` derive may write)."""
    path = kernelfile.check_layer_path(path)
    out = kernelfile.check_out_path(out, path) if out is not None else None
    layer = load_layer(path)
    return run_layer(layer, out, str(path), allow_unsafe=allow_unsafe, progress=progress)
