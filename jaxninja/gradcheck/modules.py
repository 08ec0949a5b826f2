"""Models as people write them: a Flax (nnx or linen) or Equinox module and a loss, with a torch
``nn.Module`` as the reference, turned into the model file protocol's functions
(:mod:`jaxninja.models.protocol`: ``init``, ``forward``, ``torch_forward``).

**Intermediates become rows through** :func:`tap`: the module calls ``x = tap("h", x)`` in its
own ``__call__`` (or ``forward``, in torch). Outside a check it returns ``x`` unchanged (the
module runs as it always does); while ``check`` runs the module's forward, it is the check's
own tap (a context variable holds it), so the value gets its probe (JAX) or ``retain_grad``
(torch) like any tapped value of a hand-written forward. Inside ``nnx.jit`` / ``eqx.filter_jit``
too (:mod:`jaxninja.gradcheck.taps` inlines them). A Flax linen module may instead mark them
the way Flax itself does, ``x = self.perturb("h", x)`` (:func:`linen_model`): while the check
runs the module, ``perturb`` is the check's tap, named by the module's path (``block.h``), so
the value gets its probe and its row; outside a check it is Flax's own (a no-op without a
``perturbations`` collection). ``self.sow`` cannot make a row: it stores a value but returns
none, so no probe can be added to what the module goes on with.

**Parameters** are the module's floating arrays as a plain dict: Flax nnx's ``Param`` values by
``nnx.to_pure_dict`` (``l1.kernel``), Equinox's inexact arrays by
``eqx.partition(module, eqx.is_inexact_array)`` (``l1.weight``). ``init(key)`` builds the module
from the key and returns them; ``forward`` rebuilds the module around the parameters it is
given, so ``jax.grad`` and the probes see them.

**The torch reference** (:func:`torch_module_forward`): an ``nn.Module`` and a map from each JAX
parameter name to the module's (``"l1.weight"``), with ``.T`` for a transposed one
(``{"l1.kernel": "l1.weight.T"}``: ``nn.Linear`` stores (out, in), Flax's kernel is (in, out)).
The module is called with ``torch.func.functional_call`` on the check's own leaf tensors (the
JAX parameters, copied: both sides see identical inputs), transposed where the map says, so
torch's gradients are with respect to the JAX parameters themselves.

**makemore part 5's own torch classes** (:func:`part5_torch_forward`): plain Python classes, not
``nn.Module``s (``Linear``, ``BatchNorm1d``, ``Tanh``, ``Embedding``, ``FlattenConsecutive``,
``Sequential``), each keeping its parameters as attributes (``parameters()`` lists them) and its
last output as ``.out``. The map names each JAX parameter's attribute on the network
(``"l1.W": "layers.2.weight"``, ``.T`` as above); the check's leaf tensors are set as those
attributes, every tensor ``parameters()`` lists must be mapped, and the network runs as part 5
runs it (BatchNorm in training mode: batch statistics). Its intermediates are the layers'
``.out`` (``"l1.hprebn": "layers.2"``): torch's ``retain_grad`` may be called on a tensor any
time before ``backward``, so each ``.out`` is tapped after the forward, unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax

Tap = Callable[[str, Any], Any]

_ACTIVE: contextvars.ContextVar[Tap | None] = contextvars.ContextVar("jaxninja_tap", default=None)


def tap(name: str, value: Any) -> Any:
    """``value``, marked as the intermediate ``name``: unchanged outside a check, the check's
    tap inside one (module docstring)."""
    active = _ACTIVE.get()
    return value if active is None else active(name, value)


@contextlib.contextmanager
def tapping(active: Tap) -> Iterator[None]:
    """Make :func:`tap` call ``active`` for the block."""
    token = _ACTIVE.set(active)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _with_tap(loss: Callable, build: Callable) -> Callable:
    def forward(params: Any, batch: Any, active: Tap) -> Any:
        with tapping(active):
            return loss(build(params), batch)

    return forward


def nnx_model(make: Callable[[Any], Any], loss: Callable[[Any, Any], Any]):
    """``(init, forward)`` for a Flax nnx module: ``make(rngs)`` builds it (an ``nnx.Rngs``
    from init's key), ``loss(module, batch)`` is the scalar loss. Parameters: its ``nnx.Param``
    values as a plain dict (``l1.kernel``)."""
    from flax import nnx

    skeleton: dict[str, Any] = {}

    def init(key: jax.Array) -> dict:
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        graphdef, params, rest = nnx.split(make(nnx.Rngs(seed)), nnx.Param, ...)
        skeleton.update(graphdef=graphdef, params=params, rest=rest)
        return nnx.to_pure_dict(params)

    def build(pure: dict) -> Any:
        if not skeleton:
            raise ValueError("nnx_model: forward before init")
        params = jax.tree.map(lambda x: x, skeleton["params"])  # a fresh State to fill
        nnx.replace_by_pure_dict(params, pure)
        return nnx.merge(skeleton["graphdef"], params, skeleton["rest"])

    return init, _with_tap(loss, build)


def equinox_model(make: Callable[[jax.Array], Any], loss: Callable[[Any, Any], Any]):
    """``(init, forward)`` for an Equinox module: ``make(key)`` builds it, ``loss(module,
    batch)`` is the scalar loss. Parameters: its inexact arrays (``eqx.is_inexact_array``) as a
    plain dict by their attribute path (``l1.weight``)."""
    import equinox as eqx

    skeleton: dict[str, Any] = {}

    def init(key: jax.Array) -> dict:
        params, static = eqx.partition(make(key), eqx.is_inexact_array)
        leaves, treedef = jax.tree.flatten(params)
        names = _names(params)
        skeleton.update(static=static, treedef=treedef, names=names)
        return dict(zip(names, leaves, strict=True))

    def build(flat: Mapping[str, Any]) -> Any:
        if not skeleton:
            raise ValueError("equinox_model: forward before init")
        leaves = [flat[name] for name in skeleton["names"]]
        params = jax.tree.unflatten(skeleton["treedef"], leaves)
        return eqx.combine(params, skeleton["static"])

    return init, _with_tap(loss, build)


def linen_model(
    module: Any, loss: Callable[[Callable, Any], Any], sample: Callable[[jax.Array], tuple]
):
    """``(init, forward)`` for a Flax linen module: ``module`` an ``nn.Module`` instance,
    ``sample(key)`` the arguments ``module.init`` traces it with, ``loss(call, batch)`` the
    scalar loss with ``call(*args)`` running the module on the check's parameters. Parameters:
    its ``params`` collection as a plain dict (``l1.kernel``). Intermediates: :func:`tap`, or
    Flax's ``self.perturb(name, x)`` (module docstring)."""

    def init(key: jax.Array) -> dict:
        kparams, ksample = jax.random.split(key)
        variables = module.init(kparams, *sample(ksample))
        return jax.tree.map(lambda x: x, dict(variables["params"]))

    def forward(params: Any, batch: Any, active: Tap) -> Any:
        def call(*args: Any) -> Any:
            return module.apply({"params": params}, *args)

        with tapping(active), _perturb_as_tap(active):
            return loss(call, batch)

    return init, forward


@contextlib.contextmanager
def _perturb_as_tap(active: Tap) -> Iterator[None]:
    """Flax linen's ``Module.perturb`` as ``active(path, value)`` for the block (restored
    after): the module's path and the name, joined by ``.``."""
    from flax import linen

    original = linen.Module.perturb

    def perturb(self: Any, name: str, value: Any, collection: str = "perturbations") -> Any:
        path = tuple(self.scope.path) if self.scope is not None else ()
        return active(".".join((*path, name)), value)

    linen.Module.perturb = perturb
    try:
        yield
    finally:
        linen.Module.perturb = original


def part5_torch_forward(
    make: Callable[[], Any],
    names: Mapping[str, str],
    outs: Mapping[str, str],
    loss: Callable[[Any, Any], Any],
) -> Callable:
    """A ``torch_forward(params, batch, tap)`` from makemore part 5's plain torch classes
    (module docstring): ``make()`` builds the network (once, at the first call), ``names``: each
    JAX parameter -> the attribute path of its tensor (``layers.2.weight``, ``.T`` where
    transposed), ``outs``: each intermediate row -> the layer whose ``.out`` it is
    (``layers.2``), ``loss(net, batch)``: the scalar loss, running the network."""
    built: list[Any] = []

    def torch_forward(params: Mapping[str, Any], batch: Any, active: Tap) -> Any:
        if not built:
            built.append(make())
        net = built[0]
        wanted = _part5_parameters(net)
        given = _mapped(params, names)
        for path, t in given.items():
            owner, attr = path.rpartition(".")[::2]
            setattr(_resolve(net, owner), attr, t)
        missing = sorted(set(wanted) - set(given))
        if missing:
            raise ValueError(f"part 5 parameters not mapped: {', '.join(missing)}")
        for layer in _layers(net):
            if hasattr(layer, "training"):
                layer.training = True  # batch statistics, as part 5 trains
        out = loss(net, batch)
        for row, path in outs.items():
            value = getattr(_resolve(net, path), "out", None)
            if value is None:
                raise ValueError(f"{path} has no .out (row {row!r}): not a part 5 layer")
            active(row, value)
        return out

    return torch_forward


def _mapped(params: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Each mapped parameter under its torch-side name (``names``: JAX name -> torch name,
    ``.T`` where the layouts are transposed: the value is then given transposed)."""
    flat = dict(zip(_names(params), jax.tree.leaves(params), strict=True))
    given = {}
    for jax_name, torch_name in names.items():
        if jax_name not in flat:
            raise ValueError(f"{jax_name!r} is not a parameter (they are: {', '.join(flat)})")
        t = flat[jax_name]
        if torch_name.endswith(".T"):
            torch_name, t = torch_name[:-2], t.T
        given[torch_name] = t
    return given


def _layers(net: Any) -> list[Any]:
    """A part 5 network's layers: ``net.layers`` (``Sequential``), or ``net`` if a list."""
    return list(net.layers) if hasattr(net, "layers") else list(net)


def _resolve(obj: Any, path: str) -> Any:
    """``obj`` followed along a dotted path of attributes and list indices (``layers.2``)."""
    for part in filter(None, path.split(".")):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _part5_parameters(net: Any) -> list[str]:
    """The attribute path of every tensor ``parameters()`` lists, layer by layer
    (``layers.3.gamma``); a listed tensor that is no attribute of its layer is refused."""
    prefix = "layers." if hasattr(net, "layers") else ""
    paths = []
    for i, layer in enumerate(_layers(net)):
        attrs = vars(layer)
        for t in layer.parameters():
            attr = next((k for k, v in attrs.items() if v is t), None)
            if attr is None:
                raise ValueError(f"layer {i} ({type(layer).__name__}): a parameter is no attribute")
            paths.append(f"{prefix}{i}.{attr}")
    return paths


def _names(tree: Any) -> list[str]:
    from jaxninja.gradcheck.taps import param_names

    return param_names(tree)


def torch_module_forward(
    make: Callable[[], Any], names: Mapping[str, str], loss: Callable[[Any, Any], Any]
) -> Callable:
    """A ``torch_forward(params, batch, tap)`` from a torch ``nn.Module`` (``make()`` builds
    it), ``names``: each JAX parameter name -> the module's parameter name, ending in ``.T``
    where the layouts are transposed; ``loss(call, batch)`` computes the loss with
    ``call(*args)`` running the module on the check's parameters. Every module parameter must
    be mapped (an unmapped one would keep torch's own initial values: refused)."""
    module = make()

    def torch_forward(params: Mapping[str, Any], batch: Any, active: Tap) -> Any:
        import torch

        wanted = {k for k, _ in module.named_parameters()}
        given = _mapped(params, names)
        missing = sorted(wanted - set(given))
        if missing:
            raise ValueError(f"torch module parameters not mapped: {', '.join(missing)}")

        def call(*args: Any) -> Any:
            return torch.func.functional_call(module, given, args)

        with tapping(active):
            return loss(call, batch)

    return torch_forward


__all__ = [
    "equinox_model",
    "linen_model",
    "nnx_model",
    "part5_torch_forward",
    "tap",
    "tapping",
    "torch_module_forward",
]
