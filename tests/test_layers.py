"""The package's layering, read from its source: no private name crosses a subpackage, the
shared layer imports nothing above it, and no import cycle.

Subpackages: ``core`` (the shared layer), ``nn`` (the NN engine), ``cli`` (the command line),
and the root: the front doors (``signal``, ``dask``, ``porting``) and the signal engine with
its private parts (``_spec``, ``_plan``, ``_problem``, ``_nonfinite``, the ``_methods``
subpackage). A module may use anything of its own subpackage; from another, only public
modules and public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "trueconv"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def subpackage(module: str) -> str:
    """``nn``, ``cli``, ``core``, or ``''`` for the root (private subpackages included)."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() and not parts[1].startswith("_"):
        return parts[1]
    return ""


def imports(module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` for every ``trueconv`` import of ``module``, those
    inside functions included (a deferred import is still a dependency)."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{module}:{node.lineno}: relative import")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "trueconv":
            found.append((node.module or "", [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "trueconv":
                    found.append((alias.name, [], node.lineno))
    return found


def crossings() -> list[str]:
    """Private modules or names imported from another subpackage."""
    bad = []
    for module in MODULES:
        own = subpackage(module)
        for target, names, line in imports(module):
            if subpackage(target) == own:
                continue
            private = [p for p in target.split(".")[1:] if p.startswith("_")]
            private += [n for n in names if n.startswith("_")]
            if private:
                bad.append(f"{module}:{line}: from {target} import {', '.join(names)}")
    return bad


def test_no_private_name_crosses_a_subpackage():
    assert crossings() == []


def test_the_rule_catches_what_it_is_for(monkeypatch):
    """The check itself: the imports the layering replaced would be caught."""
    monkeypatch.setitem(MODULES, "trueconv.nn._probe", PACKAGE / "nn" / "_probe.py")
    sources = {
        "from trueconv._methods.fft import next_fast_len": True,  # NN engine -> signal methods
        "from trueconv._plan import DIRECT_MARGIN_S": True,  # NN engine -> signal planner
        "from trueconv.core.transforms import next_fast_len": False,  # the shared layer
        "from trueconv.core import _private": True,
        "import trueconv.dask": False,
    }
    for source, caught in sources.items():
        monkeypatch.setattr(Path, "read_text", lambda self, s=source: s)
        assert bool([c for c in crossings() if "_probe" in c]) == caught, source


def test_the_shared_layer_imports_nothing_above_it():
    upward = [
        f"{module}:{line}: {target}"
        for module in MODULES
        if subpackage(module) == "core"
        for target, _, line in imports(module)
        if subpackage(target) != "core"
    ]
    assert upward == []


def _edges(module: str) -> set[str]:
    """The modules ``module`` imports: ``from pkg import name`` is ``pkg.name`` when that is a
    module, else ``pkg``."""
    out = set()
    for target, names, _ in imports(module):
        subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
        out.update(subs or [target])
    return out - {module}


def test_no_import_cycle():
    graph = {m: _edges(m) & MODULES.keys() for m in MODULES}
    # a package's __init__ importing its own submodules is how packages are built, not a cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    done: set[str] = set()
    path: list[str] = []

    def visit(m: str) -> None:
        if m in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(m) :], m]))
        if m in done:
            return
        path.append(m)
        for t in sorted(graph[m]):
            visit(t)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
