"""The check table for your own model (:class:`jaxninja.models.protocol.Model`): manual backward vs
``jax.grad`` (and torch) row by row.

Rows that cannot be compared (a name without a manual gradient, an extra name, a wrong shape or
dtype) are failing rows with their reason; everything wrong with the model itself is a one-line
:class:`~jaxninja.errors.ModelError` (exit 2 from the CLI).

The lecture's own table is :func:`cross_check_model` applied to the lecture's model
(:func:`jaxninja.models.lecture.lecture_model`), with the lecture's tighter bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import numerics
from jaxninja.background import importing, in_background
from jaxninja.checks import check_against, default_references, dtype_scope
from jaxninja.errors import ConfigError, JaxninjaError, ModelError, TapError
from jaxninja.gradcheck import conditioning
from jaxninja.gradcheck.compare import Row, compare_rows
from jaxninja.gradcheck.conditioning import Amplify
from jaxninja.gradcheck.explain import explain_rows, no_fd, scale_inputs
from jaxninja.gradcheck.finite_diff import check_full_cost, full_cost
from jaxninja.gradcheck.finite_diff import table_rows as fd_table_rows
from jaxninja.gradcheck.taps import (
    TappedForward,
    Taps,
    is_float,
    param_names,
    tapped_forward,
    tapped_grads,
)
from jaxninja.models.protocol import Model, frame_line, load_model, one_line
from jaxninja.models.trainable import count_params

JSON_FORMAT = 3
"""As check's. Version 3: ``config.jit`` is "eager", "jit" or "both"; each row says its
``mode``; a float32 row over its bound carries ``eps_scale_float64``, ``verdict``, ``growth``.
Version 2: rows carry "eps_scale", "reason" and "diagnosis"."""

MODES = ("eager", "jit")


class Bounds(NamedTuple):
    """The contract, eps·scale per reference (0: bit-exact). A model that is not the lecture's is
    held to 32 against ``jax.grad`` (the jit bound: its manual backward need not follow
    autodiff's operation order) and 64 against torch."""

    jax: float = numerics.MODEL_JAX
    torch: float = numerics.MODEL_TORCH
    torch_scale_rows: float | None = None  # the zero-by-symmetry rows vs torch (None: torch)


class ModelCheck(NamedTuple):
    """What :func:`cross_check_model` measured; ``rows`` is the table."""

    model: str
    seed: int
    dtype: str
    jit: bool
    against: tuple[str, ...]
    n_params: int
    loss: float
    rows: list[Row]
    skipped: tuple[str, ...]  # integer taps / parameters: no gradient
    params: Any
    batch: Any
    acts: dict[str, jax.Array]
    manual: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    autograd: dict[str, np.ndarray] | None  # torch's gradients, when torch was asked for
    modes: tuple[str, ...] = ()  # the modes whose rows the table holds (both: eager, jit)
    amplify: Amplify | None = None  # rows' measured amplification, with a conditioner
    pairs: Pairs | None = None  # (mode, against, name) -> (mine, reference): --plot's maps

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def as_json(self) -> dict:
        return {
            "format": JSON_FORMAT,
            "model": self.model,
            "config": {
                "seed": self.seed,
                "dtype": self.dtype,
                "jit": jit_mode(self.modes or (MODES[self.jit],)),
                "against": list(self.against),
            },
            "n_params": self.n_params,
            "loss": self.loss,
            "skipped": list(self.skipped),
            "ok": self.ok,
            "rows": [r.as_json() for r in self.rows],
        }


def jit_mode(modes: tuple[str, ...]) -> str:
    """``--jit``'s value for the modes a table holds: "eager", "jit" or "both"."""
    return modes[0] if len(modes) == 1 else "both"


def parse_modes(jit: str | bool) -> tuple[str, ...]:
    """``--jit``'s value (or a bool: jit or not) as the modes to run, eager first."""
    if isinstance(jit, bool):
        return (MODES[jit],)
    if jit not in (*MODES, "both"):
        raise ConfigError(f"--jit {jit!r}: expected eager, jit or both")
    return MODES if jit == "both" else (jit,)


def tag_mode(rows: list[Row], mode: str) -> list[Row]:
    """Each row marked with the mode its backwards ran in."""
    return [r._replace(mode=mode) for r in rows]


# ----------------------------------------------------------------------------- checking


def _call(model: Model, what: str, fn: Callable, *args: Any) -> Any:
    """Call a model function; its exceptions, and a ``sys.exit`` inside it, become one
    ModelError line naming the function."""
    try:
        return fn(*args)
    except JaxninjaError as err:
        raise ModelError(f"{model.name}: {what}: {err}") from None
    except SystemExit as err:  # a model function may not end the check (with exit 0, unchecked)
        raise ModelError(f"{model.name}: {what} called sys.exit({err.code!r})") from None
    except Exception as err:
        where = frame_line(err, str(Path(model.name).resolve()))
        raise ModelError(
            f"{model.name}: {what} raised {type(err).__name__}{where}: {one_line(err)}"
        ) from None


def _as_arrays(model: Model, what: str, tree: Any, dtype: np.dtype) -> Any:
    """Every leaf as a jax array, floating leaves cast to ``dtype``."""
    leaves, treedef = jax.tree.flatten(tree)
    out = []
    for leaf in leaves:
        try:  # device_put copies a numpy array; jnp.asarray compiles a program per shape for it
            arr = jax.device_put(leaf) if isinstance(leaf, np.ndarray) else jnp.asarray(leaf)
        except TypeError:
            raise ModelError(
                f"{model.name}: {what} must return a pytree of arrays, found a "
                f"{type(leaf).__name__}"
            ) from None
        floating = jnp.issubdtype(arr.dtype, jnp.floating) and arr.dtype != dtype
        out.append(arr.astype(dtype) if floating else arr)  # astype compiles, even to itself
    if not out:
        raise ModelError(f"{model.name}: {what} returned no arrays")
    return jax.tree.unflatten(treedef, out)


ARRAYS = (jax.Array, np.ndarray, np.generic)


def _manual(model: Model, grads: Any) -> dict[str, np.ndarray]:
    """The backward's result as numpy arrays by name; anything else is a ModelError."""
    if not isinstance(grads, Mapping):
        raise ModelError(
            f"{model.name}: backward must return a dict of gradients by name, got a "
            f"{type(grads).__name__}"
        )
    out = {}
    for name, g in grads.items():
        if not isinstance(name, str):
            raise ModelError(f"{model.name}: backward's keys must be names, got {name!r}")
        if not isinstance(g, ARRAYS):
            raise ModelError(
                f"{model.name}: backward returned a {type(g).__name__} for {name!r}, not an array"
            )
        out[name] = np.asarray(g)
    return out


def tap_batch_counts(acts: Mapping[str, Any], batch: Any) -> tuple[dict[str, list[int]], list[int]]:
    """Each row's batch count n for the diagnosis's factors: ``B*T`` for a ``(B, T, ...)`` row,
    ``B`` for ``(B, ...)``; rows without the batch axis (parameters) get every count seen."""
    leaves = [np.shape(x) for x in jax.tree.leaves(batch)]
    b = leaves[0][0] if leaves and leaves[0] else None
    own: dict[str, list[int]] = {}
    for name, value in acts.items():
        shape = np.shape(value)
        if b is not None and shape and shape[0] == b:
            own[name] = [b * shape[1] if len(shape) >= 3 else b]
    seen = sorted({n for ns in own.values() for n in ns}, reverse=True) or ([b] if b else [])
    return own, seen


def _check_scale_rows(model: Model, rows: Mapping[str, Any]) -> None:
    """Every name in the model's ``scale_rows`` is a row of its table: a misspelt entry would
    otherwise be ignored, and the row it meant measured at its own (zero) scale."""
    for name, upstream in model.scale_rows.items():
        for which, row in (("row", name), ("scale row", upstream)):
            if row not in rows:
                names = sorted(rows)
                known = ", ".join(names[:12]) + (
                    f", ... ({len(names)} rows)" if len(names) > 12 else ""
                )
                raise ModelError(
                    f"{model.name}: scale_rows {{{name!r}: {upstream!r}}}: {which} {row!r} is not "
                    f"a row of the table (a tapped value or a parameter: {known})"
                )


def _counts(names: list[str], acts, batch) -> dict[str, list[int]]:
    own, seen = tap_batch_counts(acts, batch)
    return {name: own.get(name, seen) for name in names}


def torch_grads(torch_forward: Callable, params: Any, batch: Any) -> dict[str, np.ndarray]:
    """torch autograd's gradient of every tapped tensor (``retain_grad``) and parameter leaf.

    Parameters become leaf tensors that require grad (floating leaves), the batch tensors
    (integer leaves as int64, torch's index type); names as
    :func:`jaxninja.gradcheck.taps.param_names`.
    """
    import torch

    leaves, treedef = jax.tree.flatten(params)
    tleaves = [torch.tensor(np.asarray(x)).requires_grad_(is_float(x)) for x in leaves]
    tbatch = jax.tree.map(
        lambda x: torch.tensor(np.asarray(x, np.int64) if not is_float(x) else np.asarray(x)),
        batch,
    )
    seen: dict[str, Any] = {}

    def tap(name: str, t: Any) -> Any:
        if name in seen:
            raise TapError(f"torch_forward: tap({name!r}) called twice")
        if isinstance(t, torch.Tensor) and t.requires_grad:
            t.retain_grad()
        seen[name] = t
        return t

    loss = torch_forward(jax.tree.unflatten(treedef, tleaves), tbatch, tap)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TapError("torch_forward must return a scalar torch tensor")
    loss.backward()

    def grad(t: Any) -> np.ndarray:
        g = t.grad if isinstance(t, torch.Tensor) else None
        return np.zeros(tuple(t.shape), np.asarray(t.detach()).dtype) if g is None else g.numpy()

    out = {name: grad(t) for name, t in seen.items() if isinstance(t, torch.Tensor)}
    for name, t in zip(param_names(params), tleaves, strict=True):
        if t.requires_grad:
            out[name] = grad(t)
    return out


def _jit_in_order(backward: Callable) -> Callable:
    """``jax.jit(backward)``, its dict of gradients in the order the backward wrote it: jit
    returns a dict with its keys sorted (``C W1 W2 b1 ...``), and the table's first failing
    row is only where a mistake starts when rows come in the backward's order."""
    order: list[Any] = []

    def in_order(params: Any, batch: Any, acts: Any) -> Any:
        grads = backward(params, batch, acts)
        if not isinstance(grads, Mapping):
            return grads  # _manual says what is wrong with it
        order[:] = list(grads)
        return list(grads.values())

    jitted = jax.jit(in_order)

    def call(params: Any, batch: Any, acts: Any) -> Any:
        out = jitted(params, batch, acts)
        return dict(zip(order, out, strict=True)) if isinstance(out, list) else out

    return call


def _both_backwards(model: Model, params: Any, batch: Any) -> tuple[Taps, dict[str, np.ndarray]]:
    """Eagerly: the forward, then the reference's backward in a second thread while the manual
    backward runs in this one (their compiles overlap, :mod:`jaxninja.background`). Both read only
    the forward's values, so each is what it would be alone. A failure of the reference (the
    forward's) is reported before one of the manual backward, as when they ran in turn."""
    fwd: TappedForward = _call(model, "forward", tapped_forward, model.forward, params, batch)
    failed: ModelError | None = None
    with in_background(fwd.backward, "jaxninja-reference") as reference:
        try:
            made = _call(model, "backward", model.backward, params, batch, fwd.acts)
            manual = _manual(model, made)  # np.asarray: waits for the manual arrays
        except ModelError as err:
            failed = err
        taps: Taps = _call(model, "forward", reference.result)
    if failed is not None:
        raise failed
    return taps, manual


def cross_check_model(
    model: Model | str | Path,
    *,
    seed: int = 42,
    dtype: str = "float32",
    jit: bool | str = False,
    against: tuple[str, ...] | None = None,
    bounds: Bounds | None = None,
    inputs: tuple[Any, Any] | None = None,
    input_scale: float = 1.0,
    explain: bool = True,
    fd_full: bool = False,
    conditioner: Conditioner | None = None,
    fd_memo: dict | None = None,
) -> ModelCheck:
    """The check table of ``model`` (a :class:`Model` or a model file's path).

    ``jax.random.key(seed)`` is split into init's and batch's keys; ``dtype`` float64 turns on
    x64 before ``init`` runs (restored after the call), and floating leaves of the parameters
    and the batch are cast to ``dtype``; ``jit`` compiles the taps' pass and the backward
    (``"eager"``, ``"jit"``, or ``"both"``: the table holds each row once per mode, eager first;
    a bool says jit or eager); ``against``: "jax", "torch", "fd" (default:
    :func:`jaxninja.checks.default_references`; with both modes each backward gets fd rows,
    against one oracle measured once, ``fd_memo``). Rows come in the backward's order.

    ``inputs``: ``(params, batch)`` to check at instead of ``init``'s and ``batch``'s (cast to
    ``dtype``), their floating values multiplied by ``input_scale``
    (:func:`jaxninja.gradcheck.explain.scale_inputs`). ``explain``: a float32 row over its bound
    is recomputed in float64 at the same inputs and its diagnosis says why
    (:mod:`jaxninja.gradcheck.explain`). ``conditioner``: measures rows' amplification of
    rounding (:func:`jaxninja.gradcheck.conditioning.amplifications`, the lecture's); an ``fd``
    row over its bound is then held to the widened allowance its amplification gives, and
    :attr:`ModelCheck.amplify` asks it for the other references' rows.
    """
    model = load_model(model) if isinstance(model, str | Path) else model
    modes = parse_modes(jit)
    results: list[ModelCheck] = []
    fd_memo = {} if fd_memo is None else fd_memo  # fd's oracle, measured once for every mode
    for mode in modes:
        one = dict(seed=seed, dtype=dtype, jit=mode == "jit", against=against, bounds=bounds)
        one["fd_full"] = fd_full
        one["conditioner"] = conditioner
        one["fd_memo"] = fd_memo
        results.append(_one_mode(model, inputs, input_scale, explain, **one))
    rows = [r for result in results for r in result.rows]
    pairs = {k: v for result in results for k, v in (result.pairs or {}).items()}
    return results[0]._replace(rows=rows, modes=modes, pairs=pairs)


Pairs = dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]
"""Each compared row's arrays by ``(mode, against, name)``: what ``--plot`` maps."""


def row_pairs(result: ModelCheck, mode: str) -> Pairs:
    """The arrays of ``result``'s jax and torch rows (the manual gradient and its reference),
    and of fd rows checked element by element (their central differences), keyed for
    :data:`Pairs`."""
    refs = {"jax": result.reference, "torch": result.autograd or {}}
    out: Pairs = {}
    for against, ref in refs.items():
        for name, value in ref.items():
            if name in result.manual:
                out[mode, against, name] = (result.manual[name], value)
    for name, pair in (result.pairs or {}).items():  # fd's, keyed by name while measured
        out[mode, "fd", name[2]] = pair
    return out


def _one_mode(
    model: Model,
    inputs: tuple[Any, Any] | None,
    input_scale: float,
    explain: bool,
    **one: Any,
) -> ModelCheck:
    """One mode's table, its rows tagged with the mode, float32 rows over their bound
    explained."""
    with dtype_scope(one["dtype"]) as np_dtype:  # float64: x64 on before init, this call only
        result = _cross_check_model(
            model,
            one["seed"],
            np_dtype,
            one["jit"],
            one["against"],
            one["bounds"],
            inputs,
            input_scale,
            one.get("fd_full", False),
            one.get("conditioner"),
            one.get("fd_memo"),
        )
    mode = MODES[result.jit]
    if explain:
        same = dict(one, against=no_fd(result.against))

        def rerun(dtype: str, scale: float) -> list[Row]:
            inputs = (result.params, result.batch)
            again = dict(same, dtype=dtype, inputs=inputs, input_scale=scale, explain=False)
            other = cross_check_model(model, **again)
            # a forward that fixes float32 inside computes part of the pass in float32 in this
            # rerun too (a tapped gradient not in dtype shows it): then it says nothing about
            # float64, and no row is explained
            pinned = any(v.dtype != dtype for v in other.reference.values())
            return [] if pinned else other.rows

        result = result._replace(rows=explain_rows(result.rows, result.dtype, rerun))
    return result._replace(
        rows=tag_mode(result.rows, mode), modes=(mode,), pairs=row_pairs(result, mode)
    )


def _cross_check_model(
    model: Model,
    seed: int,
    np_dtype: np.dtype,
    jit: bool,
    against: tuple[str, ...] | None,
    bounds: Bounds | None,
    inputs: tuple[Any, Any] | None = None,
    input_scale: float = 1.0,
    fd_full: bool = False,
    conditioner: Conditioner | None = None,
    fd_memo: dict | None = None,
) -> ModelCheck:
    dtype = str(np_dtype)
    has_torch = model.torch_forward is not None
    against = default_references(has_torch) if against is None else tuple(against)
    for name in against:
        check_against(name)
    if "torch" in against and model.torch_forward is None:
        raise ModelError(f"{model.name}: --against torch needs a torch_forward(params, batch, tap)")
    bounds = Bounds() if bounds is None else bounds
    if inputs is None:
        kinit, kbatch = jax.random.split(jax.random.key(seed))
        made = _call(model, "init(key)", model.init, kinit)
        params = _as_arrays(model, "init(key)", made, np_dtype)
        made = _call(model, "batch(key)", model.batch, kbatch)
        batch = _as_arrays(model, "batch(key)", made, np_dtype)
    else:  # the same inputs as another check's (explain's reruns), cast and scaled
        made = scale_inputs(*inputs, input_scale)
        params = _as_arrays(model, "init(key)", made[0], np_dtype)
        batch = _as_arrays(model, "batch(key)", made[1], np_dtype)
    if fd_full and "fd" in against:  # refused before any work, not after
        cost = _call(model, "forward", full_cost, model.forward, params, batch)
        check_full_cost(cost)
    if jit:
        taps: Taps = _call(
            model, "forward", lambda: tapped_grads(model.forward, params, batch, jit=True)
        )
        manual = _manual(
            model, _call(model, "backward", _jit_in_order(model.backward), params, batch, taps.acts)
        )
    else:  # torch's import (~1.5 s, Python) overlaps the forward's compiles
        with importing("torch" if "torch" in against else None):
            taps, manual = _both_backwards(model, params, batch)
    if not np.isfinite(float(taps.loss)):  # every row would compare non-finite numbers
        raise ModelError(
            f"{model.name}: the forward's loss is {float(taps.loss)} (seed {seed}, {dtype}): "
            "a check of non-finite values means nothing"
        )
    reference = {k: np.asarray(v) for k, v in taps.grads.items()}
    _check_scale_rows(model, reference)
    indices = [np.asarray(x) for x in jax.tree.leaves(batch) if not is_float(x)]
    counts = _counts(list(reference), taps.acts, batch)
    rows: list[Row] = []
    autograd = None
    common = dict(scale_rows=dict(model.scale_rows), counts=counts, indices=indices)
    amplify = _amplifier(conditioner, params, batch, taps.acts, reference)
    if "jax" in against:
        rows += compare_rows(manual, reference, "jax", bounds.jax, **common)
    if "torch" in against:
        autograd = _call(model, "torch_forward", torch_grads, model.torch_forward, params, batch)
        autograd = {k: autograd[k] for k in reference if k in autograd}
        missing = [k for k in reference if k not in autograd]
        if missing:
            raise ModelError(f"{model.name}: torch_forward taps no {', '.join(missing)}")
        sym = bounds.torch_scale_rows
        rows += compare_rows(manual, autograd, "torch", bounds.torch, sym, **common)
    fd_arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "fd" in against:  # fd_rows come in the forward's order: put them in the backward's
        fd = fd_table_rows(
            model.forward, params, batch, manual, dict(model.scale_rows), full=fd_full,
            allowance=_fd_allowance(amplify, _batch_size(batch)), memo=fd_memo,
            arrays=fd_arrays,
        )  # fmt: skip
        rank = {name: i for i, name in enumerate(manual)}
        rows += sorted(fd, key=lambda r: rank.get(r.name, len(rank)))
    return ModelCheck(
        model=model.name,
        seed=seed,
        dtype=dtype,
        jit=jit,
        against=against,
        n_params=count_params(params),
        loss=float(taps.loss),
        rows=rows,
        skipped=taps.skipped,
        params=params,
        batch=batch,
        acts=taps.acts,
        manual=manual,
        reference=reference,
        autograd=autograd,
        amplify=amplify,
        pairs={("", "fd", k): v for k, v in fd_arrays.items()},
    )


Conditioner = Callable[..., dict[str, tuple[float, float]]]
"""``conditioner(params, batch, acts, reference, names)``: each named row's ``(backward ratio,
forward ratio)`` (:func:`jaxninja.gradcheck.conditioning.amplifications`)."""


def _amplifier(
    conditioner: Conditioner | None, params: Any, batch: Any, acts: Any, reference: dict
) -> Amplify | None:
    """``conditioner`` at one check's inputs, measured once (at the first rows that ask)."""
    if conditioner is None:
        return None
    memo: dict[str, tuple[float, float]] = {}

    def amplify(names: list[str]) -> dict[str, tuple[float, float]]:
        if not memo:
            memo.update(conditioner(params, batch, acts, reference, list(reference)))
        return {k: memo[k] for k in names if k in memo}

    return amplify


def _batch_size(batch: Any) -> int:
    leaves = jax.tree.leaves(batch)
    return int(np.shape(leaves[0])[0]) if leaves and np.ndim(leaves[0]) else 0


def _fd_allowance(amplify: Amplify | None, n: int) -> Callable | None:
    """For ``fd`` rows over their bound: each row's widened allowance for the manual's own
    rounding (eps·scale) and what it says (:mod:`jaxninja.gradcheck.conditioning`)."""
    if amplify is None:
        return None

    def allowance(names: list[str]) -> dict[str, tuple[float, str]]:
        out = {}
        for name, (back, fore) in amplify(names).items():
            widened = conditioning.widen(numerics.MODEL_JAX, max(back, fore))
            if widened > numerics.MODEL_JAX:
                out[name] = (widened, conditioning.note(back, fore, widened, n))
        return out

    return allowance


# ----------------------------------------------------------------------------- the table

HEADER = (
    f"{'row':15s} {'against':12s} {'shape':12s} {'exact':5s} {'close':5s} "
    f"{'maxdiff':>10s} {'eps·scale':>10s} {'bound':>6s}  ok    diagnosis"
)


def row_line(r: Row) -> str:
    """One line of the table; a failing row ends with its reason and its diagnosis."""
    bound = "exact" if r.bound == 0 else f"{r.bound:.3g}"
    why = "; ".join(dict.fromkeys(x for x in (r.reason, r.diagnosis) if x))
    return (
        f"{r.name:15s} {r.against:12s} {str(r.shape):12s} {str(r.exact):5s} "
        f"{str(r.close):5s} {r.maxdiff:10.3g} {r.eps_scale:10.3g} {bound:>6s}  "
        f"{'ok' if r.ok else 'FAIL'}{'  ' + why if why else ''}"
    ).rstrip()


def table_lines(rows: list[Row]) -> list[str]:
    """The header and one line per row; with rows of both modes, one line per row and
    reference with a column for each mode (:data:`MODES_HEADER`), in the eager rows' order."""
    modes = tuple(dict.fromkeys(r.mode for r in rows))
    if len(modes) < 2:
        return [HEADER, *(row_line(r) for r in rows)]
    by_key: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        by_key.setdefault((r.name, r.against), {})[r.mode] = r
    return [MODES_HEADER, *(modes_line(pair, modes) for pair in by_key.values())]


MODE_CELL = 27  # one mode's column: its eps·scale, bound and ok


MODES_HEADER = (
    f"{'row':15s} {'against':12s} {'shape':12s} "
    + " ".join(f"{m + ' eps·scale':>15s} {'bound':>6s} {'ok':>4s}" for m in MODES)
    + "  diagnosis"
)


def _cell(r: Row | None) -> str:
    if r is None:
        return f"{'-':>{MODE_CELL}s}"
    bound = "exact" if r.bound == 0 else f"{r.bound:.3g}"
    return f"{r.eps_scale:15.3g} {bound:>6s} {'ok' if r.ok else 'FAIL':>4s}"


def modes_line(pair: dict[str, Row], modes: tuple[str, ...]) -> str:
    """One row and reference, a column per mode; each failing mode's reason and diagnosis."""
    first = next(iter(pair.values()))
    said: dict[str, list[str]] = {}  # a diagnosis -> the modes that say it (each once)
    for mode in modes:
        r = pair.get(mode)
        why = "; ".join(dict.fromkeys(x for x in (r.reason, r.diagnosis) if x)) if r else ""
        if why:
            said.setdefault(why, []).append(mode)
    whys = [f"{', '.join(ms)}: {why}" for why, ms in said.items()]
    cells = " ".join(f"{_cell(pair.get(m)):>{MODE_CELL}s}" for m in modes)
    return (
        f"{first.name:15s} {first.against:12s} {str(first.shape):12s} {cells}"
        f"{'  ' + ' | '.join(whys) if whys else ''}"
    ).rstrip()


def summary_lines(rows: list[Row]) -> list[str]:
    """Per reference: bit-exact and within-contract counts, the largest error, and the first
    failing row (in backward order: where a mistake starts; rows after it may only inherit it)."""
    lines = []
    several = len({r.mode for r in rows}) > 1
    for against, mode in dict.fromkeys((r.against, r.mode) for r in rows):
        rs = [r for r in rows if r.against == against and r.mode == mode]
        label = f"{against} ({mode})" if several else against
        errors = [r.eps_scale for r in rs if np.isfinite(r.eps_scale)]
        line = (
            f"{label}: {sum(r.exact for r in rs)}/{len(rs)} bit-exact, "
            f"{sum(r.ok for r in rs)}/{len(rs)} within contract, "
            f"max {max(errors, default=0.0):.3g} eps·scale"
        )
        first = next((r for r in rs if not r.ok), None)
        if first is not None:
            line += f"; first failing row {first.name} (rows below it may inherit its error)"
        lines.append(line)
    ok = all(r.ok for r in rows)
    lines.append("all rows within contract" if ok else "SOME ROWS BREAK THE CONTRACT")
    return lines


def format_model_table(result: ModelCheck) -> str:
    """The text table of :func:`cross_check_model`."""
    lines = [
        f"model {result.model}: {result.n_params} parameters, loss {result.loss:.6f}, "
        f"seed {result.seed}, {result.dtype}, {jit_mode(result.modes or (MODES[result.jit],))}",
    ]
    if result.skipped:
        lines.append(f"no gradient (integer values): {', '.join(result.skipped)}")
    lines += ["", *table_lines(result.rows), ""]
    return "\n".join(lines + summary_lines(result.rows))


__all__ = [
    "MODES",
    "Bounds",
    "ModelCheck",
    "cross_check_model",
    "format_model_table",
    "torch_grads",
]
