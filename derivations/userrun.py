"""``jaxninja derive --layer FILE``: check a stated layer end to end and say what was found.

Derive every input's gradient for symbolic sizes; prove each claim or refute it (the simplified
difference and the smallest counterexample, both values printed); write the JAX kernel of the
derived gradients; verify it against ``jax.vjp`` in float64; print the time each part took.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import sympy as sp

from derivations import exact, usercheck, userkernel
from derivations.claims import is_index_claim
from derivations.usercheck import Counterexample, Verdict, check, wrt
from derivations.userlayer import Layer, LayerError, load_layer


class Report(NamedTuple):
    """Everything one run found, and its text."""

    layer: Layer
    verdicts: tuple[Verdict, ...]
    verified: list[userkernel.Verified]
    kernel: Path | None  # where the kernel was written (None: a temporary file)
    problem: str | None  # why no kernel was generated (None: it was)
    seconds: dict[str, float]
    text: str

    @property
    def not_proved(self) -> list[str]:
        """Inputs whose claim was not proved (refuted, or undecided); a claim CHECKED exactly
        up to stated sizes (shifted reads) is not among them."""
        return [
            v.key for v in self.verdicts if v.proof is not None and not v.proof.ok and not v.checked
        ]

    @property
    def ok(self) -> bool:
        """Every claim proved and the kernel within the bound at every size."""
        if self.layer.exact_only:  # no kernel is generated for shifted reads: the claims decide
            return not self.not_proved
        return (
            not self.not_proved
            and self.problem is None
            and bool(self.verified)
            and all(v.ok for v in self.verified)
        )


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


def verdict_lines(layer: Layer, verdict: Verdict, derived: bool = True) -> list[str]:
    """What was found for one input: the derived gradient in the forward's names (unless
    ``derived`` is False), the claim, and its verdict with the counterexample."""
    key = verdict.key
    pairs = userkernel.namings(layer, layer.free_sizes(layer.inputs[key]))
    lines = [f"-- d{key} = d objective / d {sp.sstr(wrt(layer, key))}"]
    if derived:
        named = userkernel.in_names(verdict.derived, layer, pairs)
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
            lines.append(
                f"  PROVED for {where}: simplify(derived - claim) == 0 and an exact "
                "random-rational point agrees"
            )
        elif verdict.mismatch is not None:  # read as numpy reads it, the shape is wrong
            lines.append(f"  REFUTED: {verdict.mismatch.reason}")
            lines.append(f"  counterexample: {verdict.mismatch.example}")
        elif verdict.counterexample is not None:
            lines.append("  REFUTED: the claim is not the gradient")
            difference = userkernel.named(verdict.difference, pairs)
            lines.append(f"  derived - claim = {sp.sstr(difference)}")
            lines += _example_lines(layer, key, verdict.counterexample)
        else:
            lines.append("  NOT PROVED: simplify does not reach zero, yet no counterexample")
            difference = userkernel.named(verdict.difference, pairs)
            lines.append(f"  derived - claim = {sp.sstr(difference)}")
            lines += _example_lines(layer, key, None, verdict.searched)
        if not verdict.proof.ok and verdict.undefined:
            lines.append("  undefined: " + "; ".join(verdict.undefined))
    lines.append(f"  ({verdict.seconds:.2f} s)")
    return lines


def _shifted_lines(layer: Layer, verdict: Verdict) -> list[str]:
    """A claim about shifted reads, decided by the exact check at every size up to the
    stated bounds (:mod:`derivations.shifts`): CHECKED there, REFUTED, or NOT PROVED."""
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


def _kernel(
    layer: Layer, verdicts, out: Path | None, source: str, seconds: dict, verify: bool = True
):
    """Generate the kernel into ``out`` and verify it: (results, None), or ([], why not)."""
    start = time.perf_counter()
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
        text = userkernel.render_kernel(layer, gradients, source, origins, frozenset(printed))
    except LayerError as err:
        return [], str(err)
    with tempfile.TemporaryDirectory() as tmp:
        path = out if out is not None else Path(tmp) / f"{layer.name}_kernel.py"
        path.write_text(text, encoding="utf-8")
        seconds["generate"] = time.perf_counter() - start
        start = time.perf_counter()
        try:
            module = userkernel.load_kernel(path, layer.name)
            verified = userkernel.verify(layer, module) if verify else []
        except Exception as err:  # a kernel that does not run is reported, not traced back
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return [], f"the kernel does not run: {type(err).__name__}: {first}"
        finally:
            seconds["verify"] = time.perf_counter() - start
    return verified, None


def run_layer(layer: Layer, out: Path | None, source: str, verify: bool = True) -> Report:
    """Derive, prove/refute, generate into ``out`` (a temporary file when None), verify
    (``verify=False``: a caller that checks the kernel itself; the report is then not ok)."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    problems = usercheck.shift_problems(layer)
    if problems:
        raise LayerError(f"layer {layer.name}: {problems[0]}")
    verdicts = tuple(check(layer, key) for key in layer.differentiable)
    seconds["derive + prove/refute"] = time.perf_counter() - start
    if layer.exact_only:  # the array printer has no form for a shifted read: nothing written
        verified, problem = [], "kernels are not generated for shifted reads or declared sizes"
    else:
        verified, problem = _kernel(layer, verdicts, out, source, seconds, verify)
    lines = [f"== {layer.title} (layer {layer.name}; sizes {', '.join(map(str, layer.axes))})"]
    lines += ["forward:"] + [f"  {line.text}" for line in layer.lines]
    for verdict in verdicts:
        lines += verdict_lines(layer, verdict)
    where = f"wrote {out}" if out is not None else "not kept (name a file with --out)"
    if problem is not None:
        lines.append(f"-- kernel: NOT GENERATED: {problem}")
    else:
        lines.append(f"-- kernel: {layer.name}_forward, {layer.name}_backward: {where}")
        torch = " and torch autograd" if verified and verified[0].torch_errors else ""
    if problem is None and not verify:
        lines.append("-- kernel: not verified here (the caller checks it)")
    elif problem is None:
        lines.append(
            f"-- kernel vs jax.vjp{torch} of the forward as stated, float64, one axis varied "
            f"at a time, the others at {userkernel.OTHER_SIZE} (max |error| / (eps * scale), "
            "scale: max |gradient| or of its printed form with every term in absolute value; "
            f"bound {userkernel.BOUND:g}):"
        )
    for result in verified:
        sizes = ", ".join(f"{k}={v}" for k, v in result.sizes.items())
        errors = ", ".join(f"{k} {v:.2f}" for k, v in result.errors.items())
        if result.torch_errors:
            worst = max(result.torch_errors.values())
            errors += f"; torch worst {worst:.2f}"
        lines.append(f"  {sizes}: {errors}: {'ok' if result.ok else 'OVER THE BOUND'}")
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
    lines.append(f"== time: {sum(seconds.values()):.2f} s ({parts})")
    if layer.exact_only:
        lines.append(_shifted_verdict(verdicts))
    report = Report(layer, verdicts, verified, out, problem, seconds, "\n".join(lines) + "\n")
    return report


def _shifted_verdict(verdicts) -> str:
    """The closing line of a layer with shifted reads (exit 0 unless refuted or undecided)."""
    claimed = [v for v in verdicts if v.proof is not None]
    refuted = [v.key for v in claimed if v.counterexample is not None or v.mismatch is not None]
    open_ = [v.key for v in claimed if not v.checked and v.key not in refuted]
    checked = [v for v in claimed if v.checked and not v.proof.ok]
    proved = [v for v in claimed if v.proof.ok]
    if refuted:
        head = f"REFUTED: {', '.join('d' + k for k in refuted)} ({len(refuted)} of {len(claimed)})"
    elif open_:
        head = f"NOT PROVED: {', '.join('d' + k for k in open_)} ({len(open_)} of {len(claimed)})"
    elif checked:
        head = f"CHECKED {len(checked)}/{len(claimed)} exactly for {checked[0].checked}"
        if proved:
            head = f"PROVED {len(proved)}/{len(claimed)}, {head}"
    elif proved:
        head = f"PROVED {len(proved)}/{len(claimed)}"
    else:
        head = "no claims"
    return f"== verdict: {head}; kernel not generated (shifted reads or declared sizes)"


def run_file(path: str | Path, out: str | Path | None = None) -> Report:
    """:func:`run_layer` on the layer a file defines."""
    if out is not None and Path(out).resolve() == Path(path).resolve():
        raise LayerError(f"--out {out}: that is the layer file itself; name another file")
    if out is not None and Path(out).is_dir():
        raise LayerError(f"--out {out}: is a directory; name a file")
    layer = load_layer(path)
    return run_layer(layer, Path(out) if out is not None else None, str(path))
