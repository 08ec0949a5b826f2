"""The package's shape (issue 26), read from its syntax trees without importing it: no module
borrows another's private names, every exception lives in errors.py, no module re-exports a name
that has its home elsewhere, and ``__init__``'s TYPE_CHECKING block names exactly the lazy exports.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "jaxninja"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _absolute(node: ast.ImportFrom, name: str, path: Path) -> str:
    """The module an ``ImportFrom`` in module ``name`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _borrowed(name: str, path: Path) -> list[str]:
    """``from X import _name`` and ``X._name`` (X a jaxninja module) in one module's source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: set[str] = set()  # local names bound to jaxninja modules
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, name, path)
            for alias in node.names:
                if source.startswith("jaxninja") and _private(alias.name):
                    found.append(f"{path.name}:{node.lineno}: from {source} import {alias.name}")
                if f"{source}.{alias.name}" in MODULES:
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jaxninja"):
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in aliases:
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_walk_finds_what_it_looks_for(tmp_path):
    """The check itself can fail: both kinds of borrowing in a module are found."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from jaxninja.training.run import _agreement\n"
        "from jaxninja.training import run\n"
        "x = run._train\n"
    )
    found = _borrowed("jaxninja.bad", bad)
    assert len(found) == 2 and "_agreement" in found[0] and "run._train" in found[1]


def test_no_module_uses_another_modules_private_names():
    found = [hit for name, path in MODULES.items() for hit in _borrowed(name, path)]
    assert found == [], "\n".join(found)


def _exception_names() -> set[str]:
    errors = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
    ours = {n.name for n in errors.body if isinstance(n, ast.ClassDef)}
    theirs = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)}
    return ours | {n for n in theirs if issubclass(getattr(builtins, n), BaseException)}


def test_every_exception_class_is_in_errors_py():
    exceptions = _exception_names()
    assert {"JaxninjaError", "ModelError", "TapError", "NonFiniteLoss"} <= exceptions
    found = []
    for name, path in MODULES.items():
        if name == "jaxninja.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if bases & exceptions:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: class {node.name}")
    assert found == [], "\n".join(found)


def _all_names(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            if isinstance(node.value, ast.List | ast.Tuple):
                return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return []


def test_no_module_re_exports_a_name_from_another():
    """A name has one import path: a module's ``__all__`` lists only what it defines, and no
    ``import X as X`` (the re-export idiom) appears."""
    found = []
    for name, path in MODULES.items():
        if name == "jaxninja":
            continue  # the curated API: lazy, one path per name by _EXPORTS
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                for alias in node.names:
                    imported.add(alias.asname or alias.name.split(".")[0])
                    if alias.asname and alias.asname == alias.name.split(".")[-1]:
                        found.append(
                            f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name} as itself"
                        )
        found += [f"{path.relative_to(ROOT)}: __all__ lists imported {n}"
                  for n in _all_names(tree) if n in imported]  # fmt: skip
    assert found == [], "\n".join(found)


def test_the_type_checking_block_names_the_lazy_exports():
    """Editors see what ``__getattr__`` serves: the same names from the same modules."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    exports = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_EXPORTS"
    )
    lazy = {k.value: v.value for k, v in zip(exports.keys, exports.values, strict=True)}
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    seen = {a.name: node.module for node in block.body for a in node.names}
    assert len(lazy) >= 40 and seen == lazy


def test_the_wheel_ships_the_packages_only():
    """notebooks/ and benchmarks/ are the repository's, not the installed package's."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(shipped) == ["derivations", "jaxninja", "torch_ref"]
