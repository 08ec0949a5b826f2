"""Central differences in float64: a gradient oracle that shares no code with autodiff.

``check``'s other references, ``jax.grad`` and torch autograd, are both autodiff: a wrong
``custom_vjp`` rule (or a wrong ``torch.autograd.Function``) is wrong in them too, and a manual
backward that copies the rule agrees with them. Finite differences only *run* the forward.

Every row of the table (a tapped intermediate or a parameter) is checked with the loss as a
function of that row alone, everything else held. A tap is perturbed through a probe added
where it is tapped (``tap(name, x) = x + probe``), as :func:`jaxninja.intermediate_grads`
differentiates it, so the estimate is of the same quantity: d loss / d x summed over x's uses.

**The estimate and its bound are measured, not tuned.** Along a direction ``v`` (a unit vector
``e_i`` for one element, or a random unit direction)::

    D(h) = (f(x + h v) - f(x - h v)) / 2h  =  g.v + c h^2 + O(h^4)

Two step sizes estimate the truncation error: ``D(2h) - D(h) = 3 c h^2 + ...``, so
``|D(2h) - D(h)| / 3`` is it (and that difference also carries the evaluations' rounding). The
rounding error of ``D(h)`` is about ``eps |f| / h``. A row passes where, at every element (or
direction)::

    |mine - D(h)| <= SAFETY * (|D(2h) - D(h)| / 3 + eps |f| / h) + MODEL_JAX * eps * scale

``SAFETY`` (4) covers what the two-step estimate leaves out (the O(h^4) term, D(2h)'s own
rounding); the last term is the contract's allowance for the manual backward's own rounding
(:data:`jaxninja.numerics.MODEL_JAX` eps·scale, with the eps of *its* dtype: a float32 backward is
held to the float32 contract against a float64 oracle; ``scale`` the row's largest element). Along
a direction ``v`` that allowance is carried by ``sum |v_i|``: per-element errors within the
contract add up to at most that along ``v``.
``h = eps^(1/3) * max(1, max|x|)``: the step that balances truncation against rounding for
central differences in float64 (~6e-6 at |x| <= 1).

**Cost.** A row of at most :data:`FULL_LIMIT` (1,024) elements is checked element by element: 4
forwards per element (the full Jacobian of the loss). Larger rows are checked along
:data:`DIRECTIONS` random unit directions by default (as ``jax.test_util.check_grads`` does: a
mistake shows along almost every direction), 4 forwards each; ``full=True`` checks every element
of every row (:func:`full_cost` says how many forwards that is; ``check --fd-full`` refuses more
than :data:`FULL_MAX_FORWARDS`). Every forward runs in one compiled program, vmapped over
:data:`CHUNK` perturbations at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxninja import numerics
from jaxninja.errors import ConfigError, FdError
from jaxninja.gradcheck.compare import Row
from jaxninja.gradcheck.taps import inlines_jit, is_float, param_names

FULL_LIMIT = 1024
"""Rows with at most this many elements are checked element by element by default. Not 4,096:
there makes the WaveNet example's table 205,000 float64 forwards (minutes here), 1,024 makes it
8,900; larger rows are still checked along random directions."""

DIRECTIONS = 4
"""Random unit directions per larger row (each independent of the mistake it may meet)."""

SAFETY = 4.0
"""The bound's factor over the measured truncation + rounding estimate (module docstring)."""

CHUNK = 32
"""Perturbations evaluated in one vmapped call. Each holds a copy of every row's values: at 96
or 256 copies of the lecture's ~26,000 values the allocations cost more (15 s of system time in
page faults, measured) than the fewer calls save; at 32 the system time is ~1 s."""

EPS64 = float(np.finfo(np.float64).eps)

Allowance = Callable[[list[str]], dict[str, tuple[float, str]]]
"""``allowance(names)``: for rows over their bound, a wider allowance for the manual's own
rounding (eps·scale) and why (:func:`fd_rows`)."""

FULL_MAX_FORWARDS = 100_000
"""``--fd-full`` is refused past this many float64 forwards (4 per element of every row). At the
~900 forwards a second measured on this 2-core machine (the WaveNet's 8,900 in ~10 s) it is ~2
minutes: the lecture's full Jacobian (91,812 forwards) fits, the WaveNet example's (499,748,
~9 minutes) does not."""


def check_full_cost(cost: int, flag: str = "--fd-full") -> int:
    """``cost`` (forwards) if within :data:`FULL_MAX_FORWARDS`, else a one-line ConfigError."""
    if cost > FULL_MAX_FORWARDS:
        raise ConfigError(
            f"{flag}: the full Jacobian of this table is {cost:,} float64 forwards (4 per "
            f"element), more than the limit {FULL_MAX_FORWARDS:,} (~2 min here); leave "
            f"{flag} out to check rows over {FULL_LIMIT:,} elements along "
            f"{DIRECTIONS} random directions"
        )
    return cost


class FdRow(NamedTuple):
    """One row against finite differences."""

    name: str
    shape: tuple[int, ...]
    mode: str  # "full": every element; "directions": DIRECTIONS random unit directions
    estimate: np.ndarray  # the fd gradient (full) or the directional derivatives (directions)
    error: float  # |mine - estimate| where error / bound is largest
    bound: float  # the measured bound there
    worst: float  # max over elements (directions) of error / bound: the row passes at <= 1
    scale: float  # the element scale the allowance used (a zero-by-symmetry row's borrowed one)
    eps_mine: float  # the machine epsilon of the manual gradient's dtype
    note: str = ""  # why the manual's rounding allowance is wider than the contract's

    @property
    def ok(self) -> bool:
        return bool(self.worst <= 1.0)


class _Row(NamedTuple):
    """Where a row sits in the one flat vector of every row's values."""

    name: str
    shape: tuple[int, ...]
    offset: int
    size: int
    tap: bool  # a tapped intermediate (perturbed through its probe) or a parameter


def _to64(tree: Any) -> Any:
    """Floating leaves as float64 (inside an x64 scope), others as they are."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if is_float(x) else x, tree)


def _tapped(forward: Callable, params: Any, batch: Any) -> tuple[dict[str, jax.Array], Any]:
    """Every floating tapped value, by name in forward order, and the loss."""
    acts: dict[str, jax.Array] = {}

    def tap(name: str, x: jax.Array) -> jax.Array:
        if is_float(x):
            acts[name] = x
        return x

    loss = forward(params, batch, tap)
    return acts, loss


class _Oracle:
    """The loss as a function of one flat float64 vector holding every row (taps as zero
    probes, then the floating parameters), compiled once for single-element and for
    directional perturbations."""

    def __init__(self, forward: Callable, params: Any, batch: Any) -> None:
        acts, _ = jax.jit(lambda p, b: _tapped(forward, p, b))(params, batch)
        leaves, self.treedef = jax.tree.flatten(params)
        names = param_names(params)
        rows, parts, offset = [], [], 0
        for name, value in acts.items():
            rows.append(_Row(name, tuple(value.shape), offset, value.size, True))
            parts.append(jnp.zeros(value.size, jnp.float64))
            offset += value.size
        self.float_leaf = {}
        for index, (name, leaf) in enumerate(zip(names, leaves, strict=True)):
            if is_float(leaf):
                rows.append(_Row(name, tuple(leaf.shape), offset, leaf.size, False))
                parts.append(jnp.ravel(leaf))
                self.float_leaf[index] = rows[-1]
                offset += leaf.size
        self.rows, self.leaves, self.batch, self.forward = rows, leaves, batch, forward
        self.z0 = jnp.concatenate(parts) if parts else jnp.zeros(0, jnp.float64)
        self.values = {r.name: (np.asarray(acts[r.name]) if r.tap else None) for r in rows}
        for index, row in self.float_leaf.items():
            self.values[row.name] = np.asarray(leaves[index])
        loss0 = self.loss(self.z0)
        if jnp.result_type(loss0) != jnp.float64:
            raise FdError(
                f"finite differences need the forward in float64; its loss is "
                f"{jnp.result_type(loss0)} (a dtype fixed inside the forward?)"
            )
        self.f0 = float(loss0)
        self.at_element = jax.jit(jax.vmap(lambda i, step: self.loss(self.z0.at[i].add(step))))
        self.along = jax.jit(jax.vmap(lambda d: self.loss(self.z0 + d)))

    def loss(self, z: jax.Array) -> jax.Array:
        """The forward's loss with every row read from ``z``."""
        leaves = list(self.leaves)
        for index, row in self.float_leaf.items():
            leaves[index] = z[row.offset : row.offset + row.size].reshape(row.shape)
        params = jax.tree.unflatten(self.treedef, leaves)
        probes = {r.name: r for r in self.rows if r.tap}

        def tap(name: str, x: jax.Array) -> jax.Array:
            row = probes.get(name)
            if row is None or not is_float(x):
                return x
            return x + z[row.offset : row.offset + row.size].reshape(row.shape).astype(x.dtype)

        return self.forward(params, self.batch, tap)

    def step(self, row: _Row) -> float:
        """h for this row: eps^(1/3) * max(1, max|x|)."""
        return EPS64 ** (1 / 3) * max(1.0, float(np.max(np.abs(self.values[row.name]), initial=0)))


def _chunked(fn: Callable, *args: np.ndarray) -> np.ndarray:
    """``fn`` over the leading axis of ``args`` in CHUNK-sized calls (the last one padded, so
    one compiled shape serves every call)."""
    n, out = len(args[0]), []
    for start in range(0, n, CHUNK):
        part = [a[start : start + CHUNK] for a in args]
        pad = CHUNK - len(part[0])
        part = [np.concatenate([p, np.repeat(p[-1:], pad, 0)]) if pad else p for p in part]
        out.append(np.asarray(fn(*part))[: CHUNK - pad])
    return np.concatenate(out) if out else np.zeros(0)


def _differences(losses: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """D(h) and D(2h) from losses laid out as (+h, -h, +2h, -2h) per perturbation."""
    plus, minus, plus2, minus2 = losses.reshape(4, -1)
    return (plus - minus) / (2 * h), (plus2 - minus2) / (4 * h)


class _Measured(NamedTuple):
    """One row's differences before judging: what the manual gradient says along each probed
    element (or direction), D(h), D(2h), h, and the manual's dtype eps."""

    row: _Row
    mode: str
    mine: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    h: float
    eps_mine: float
    weight: np.ndarray  # per direction, sum |v_i| (1 for an element): the allowance's reach
    scale: float  # the row's element scale: max |D(h)| (full), max |mine| (directions)


def _judge(m: _Measured, f0: float, scale: float, allowance: float = numerics.MODEL_JAX) -> FdRow:
    """The row's error against D(h) and the measured bound, element by element; ``scale`` is
    the row's (or its scale row's) element scale, for the manual's rounding allowance: the
    contract's eps·scale per element, carried along a direction by sum |v_i|."""
    bound = SAFETY * (np.abs(m.d2 - m.d1) / 3 + EPS64 * abs(f0) / m.h)
    bound = bound + allowance * m.eps_mine * scale * m.weight
    error = np.abs(m.mine - m.d1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, error / bound, np.where(error > 0, np.inf, 0.0))
    ratio = np.where(np.isfinite(m.mine) & np.isfinite(m.d1), ratio, np.inf)
    at = int(np.argmax(ratio)) if ratio.size else 0
    pick = (lambda a: float(a.flat[at])) if ratio.size else (lambda a: 0.0)
    estimate = m.d1.reshape(m.row.shape) if m.mode == "full" else m.d1
    return FdRow(
        m.row.name, m.row.shape, m.mode, estimate, pick(error), pick(bound), pick(ratio),
        scale, m.eps_mine,
    )  # fmt: skip


class _Differences(NamedTuple):
    """One row's central differences: what the oracle measured, whatever gradient it judges."""

    mode: str  # "full" or "directions"
    d1: np.ndarray
    d2: np.ndarray
    h: float
    v: np.ndarray | None  # the random unit directions (directions only)


def _full_differences(oracle: _Oracle, row: _Row) -> _Differences:
    h = oracle.step(row)
    index = np.tile(np.arange(row.offset, row.offset + row.size), 4)
    steps = np.repeat(np.array([h, -h, 2 * h, -2 * h]), row.size)
    d1, d2 = _differences(_chunked(oracle.at_element, index, steps), h)
    return _Differences("full", d1, d2, h, None)


def _directional_differences(oracle: _Oracle, row: _Row, rng) -> _Differences:
    h = oracle.step(row)
    v = rng.standard_normal((DIRECTIONS, row.size))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    dense = np.zeros((4 * DIRECTIONS, oracle.z0.size))
    for k, factor in enumerate((h, -h, 2 * h, -2 * h)):
        dense[k * DIRECTIONS : (k + 1) * DIRECTIONS, row.offset : row.offset + row.size] = (
            factor * v
        )
    d1, d2 = _differences(_chunked(oracle.along, dense), h)
    return _Differences("directions", d1, d2, h, v)


def _measured(row: _Row, diff: _Differences, mine: np.ndarray, eps_mine: float) -> _Measured:
    """``mine`` against the row's differences."""
    if diff.v is None:
        ones, scale = np.ones(row.size), float(np.max(np.abs(diff.d1), initial=0))
        return _Measured(row, "full", mine.ravel(), diff.d1, diff.d2, diff.h, eps_mine, ones, scale)
    weight, scale = np.abs(diff.v).sum(1), float(np.max(np.abs(mine), initial=0))
    return _Measured(
        row, "directions", diff.v @ mine.ravel(), diff.d1, diff.d2, diff.h, eps_mine, weight, scale
    )


def full_cost(forward: Callable, params: Any, batch: Any) -> int:
    """How many forwards ``full=True`` costs: 4 per element of every row (traced abstractly,
    nothing computed)."""
    with jax.enable_x64(True):
        params, batch = _to64(params), _to64(batch)
        forward, _ = inlines_jit(forward, params, batch)
        acts, _ = jax.eval_shape(lambda p, b: _tapped(forward, p, b), params, batch)
        leaves = [x for x in jax.tree.leaves(params) if is_float(x)]
        return 4 * (sum(a.size for a in acts.values()) + sum(x.size for x in leaves))


def fd_rows(
    forward: Callable,
    params: Any,
    batch: Any,
    mine: Mapping[str, Any],
    *,
    full: bool = False,
    full_limit: int = FULL_LIMIT,
    seed: int = 0,
    scale_rows: Mapping[str, str] | None = None,
    allowance: Allowance | None = None,
    memo: dict | None = None,
) -> list[FdRow]:
    """Every row of ``mine`` (a manual gradient by tap or parameter name) against central
    differences of ``forward(params, batch, tap)`` in float64 (x64 switched on for this call
    only). Rows of at most ``full_limit`` elements (all rows with ``full``) are checked element
    by element, larger ones along random directions drawn from ``seed``. Rows come in the
    forward's order, taps then parameters; a name of ``mine`` that is neither a floating tap nor
    a floating parameter, or whose shape is not the row's, is left out (the table reports it).
    A row zero by symmetry (``scale_rows``: its name -> the row whose scale it borrows) gets the
    manual's rounding allowance at that row's scale, as the table's other references do.
    ``allowance(names)``, asked for the rows over their bound: a wider allowance (eps·scale)
    for the manual's own rounding and its reason, where the row's computation amplifies
    rounding (:mod:`jaxninja.gradcheck.conditioning`); those rows are judged again with it.
    ``memo``: a dict shared by calls at the same forward, parameters and batch (``check --jit
    both``'s two backwards): the oracle and each row's differences are measured once, each call
    judges its own ``mine`` against them.
    Raises :class:`FdError` when the forward does not compute in float64."""
    memo = {} if memo is None else memo
    rng = memo.setdefault("rng", np.random.default_rng(seed))
    with jax.enable_x64(True):
        if "oracle" not in memo:
            params, batch = _to64(params), _to64(batch)
            forward, _ = inlines_jit(forward, params, batch)  # a tap inside an inner jit
            memo["oracle"] = _Oracle(forward, params, batch)
        oracle = memo["oracle"]
        measured = {}
        for row in oracle.rows:
            if row.name not in mine:
                continue
            value = np.asarray(mine[row.name])
            if value.shape != row.shape:
                continue  # a wrong shape is the table's failing row, with its reason
            eps_mine = numerics.machine_eps(value.dtype)
            value = value.astype(np.float64)
            key = (row.name, full or row.size <= full_limit)
            if key not in memo:
                memo[key] = (
                    _full_differences(oracle, row)
                    if key[1]
                    else _directional_differences(oracle, row, rng)
                )
            measured[row.name] = _measured(row, memo[key], value, eps_mine)
    scales = {name: m.scale for name, m in measured.items()}
    borrow = dict(scale_rows or {})
    rows = {
        name: _judge(m, oracle.f0, scales.get(borrow.get(name, name), scales[name]))
        for name, m in measured.items()
    }
    failing = [name for name, r in rows.items() if not r.ok]
    if allowance is not None and failing:
        for name, (wider, why) in allowance(failing).items():
            scale = rows[name].scale
            rows[name] = _judge(measured[name], oracle.f0, scale, wider)._replace(note=why)
    return list(rows.values())


def table_rows(
    forward: Callable,
    params: Any,
    batch: Any,
    mine: Mapping[str, Any],
    scale_rows: Mapping[str, str] | None = None,
    *,
    full: bool = False,
    allowance: Allowance | None = None,
    memo: dict | None = None,
    arrays: dict | None = None,
) -> list[Row]:
    """The check table's ``fd`` rows: each :class:`FdRow` in the table's units. ``eps_scale``
    and ``bound`` are the error and the measured bound at the row's worst element (or
    direction), in eps·scale of the manual gradient's dtype, so the row is ok exactly when
    that element is within its bound. A row zero by symmetry takes its scale from the row
    ``scale_rows`` names, as the other references' rows do. ``arrays``, if given, receives each
    row checked element by element as ``name: (mine, central differences)`` (``--plot``'s
    maps)."""
    rows = fd_rows(
        forward,
        params,
        batch,
        mine,
        full=full,
        scale_rows=scale_rows,
        allowance=allowance,
        memo=memo,
    )
    out = []
    for r in rows:
        unit = r.eps_mine * (r.scale if r.scale > 0 else 1.0)  # as numerics.row_scale: 0 -> 1
        how = "every element" if r.mode == "full" else f"{DIRECTIONS} random directions"
        diagnosis = (
            ""
            if r.ok
            else f"differs from float64 central differences ({how}) by {r.error:.3g}, "
            f"{r.worst:.3g}x the measured truncation + rounding bound"
        )
        diagnosis = "; ".join(x for x in (r.note, diagnosis) if x)
        row = Row(r.name, r.shape, "fd", False, r.ok, r.error, r.error / unit, r.bound / unit)
        if arrays is not None and r.mode == "full":
            arrays[r.name] = (np.asarray(mine[r.name]), r.estimate)
        out.append(row._replace(diagnosis=diagnosis))
    return out
