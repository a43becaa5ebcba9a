"""The package's shape, read from its source (docs/ARCHITECTURE.md): rooms and one-way arrows.

An AST walk over bmcrypt/ builds the module import graph (every import, at any depth, including
imports under TYPE_CHECKING and inside functions) and checks the rules a newcomer relies on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "bmcrypt"
GENERATED = "bmcrypt.bmodel._fbs"
EXTENSIONS = {"bmcrypt._native"}  # compiled, not in the source tree
#: The package's front door re-exports the recipes of every layer, lazily, by name: it sits
#: above everything (like the CLI) and is not a room of its own.
FRONT_DOOR = "bmcrypt"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SOURCE.rglob("*.py")
            if not _module_name(p).startswith(GENERATED)}


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not MODULES[module].name == "__init__.py":
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> set[str]:
    """The bmcrypt modules `module` imports (`from pkg import sub` counts as importing pkg.sub)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = sub in MODULES or sub.startswith(GENERATED) or sub in EXTENSIONS
                found.add(sub if is_module else target)
    return {m for m in found if m == "bmcrypt" or m.startswith("bmcrypt.")}


GRAPH = {m: _imports(m) for m in MODULES}


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def test_every_package_directory_has_an_init():
    missing = [str(d.relative_to(SOURCE.parent)) for d in SOURCE.rglob("*")
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
               and not (d / "__init__.py").exists()]
    assert missing == []


@pytest.mark.parametrize("upper", ["bmcrypt.cli", "bmcrypt.workflow"])
def test_nothing_below_the_command_layer_imports_it(upper: str):
    # The command layer (cli) may use the flows (workflow); nothing else may use either. (The
    # package's front door, bmcrypt/__init__.py, names its recipes as strings, lazily.)
    offenders = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                       if _in(t, upper) and not _in(m, upper) and not _in(m, "bmcrypt.cli")
                       and m != FRONT_DOOR)
    assert offenders == []


@pytest.mark.parametrize(("room", "forbidden"), [
    ("bmcrypt.bmodel", ["bmcrypt.crypto", "bmcrypt.protect", "bmcrypt.files", "bmcrypt.runtime",
                        "bmcrypt.chat", "bmcrypt.inspect", "bmcrypt.keys", "bmcrypt.loader"]),
    ("bmcrypt.crypto", ["bmcrypt.bmodel", "bmcrypt.protect", "bmcrypt.files", "bmcrypt.runtime",
                        "bmcrypt.chat", "bmcrypt.inspect", "bmcrypt.keys", "bmcrypt.loader"]),
    ("bmcrypt.files", ["bmcrypt.bmodel", "bmcrypt.crypto", "bmcrypt.protect", "bmcrypt.runtime",
                       "bmcrypt.chat", "bmcrypt.inspect"]),
    ("bmcrypt.runtime", ["bmcrypt.bmodel", "bmcrypt.crypto", "bmcrypt.protect", "bmcrypt.files",
                         "bmcrypt.chat", "bmcrypt.inspect", "bmcrypt.keys", "bmcrypt.loader"]),
    ("bmcrypt.protect", ["bmcrypt.runtime", "bmcrypt.chat", "bmcrypt.inspect",
                         "bmcrypt.loader"]),
])
def test_lower_rooms_do_not_reach_up_or_sideways(room: str, forbidden: list[str]):
    offenders = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if _in(m, room)
                       for t in targets if any(_in(t, f) for f in forbidden))
    assert offenders == []


def test_private_internals_stay_in_their_package():
    offenders = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for target in GRAPH[module]:
            if (".bmodel._walk" in target or target.startswith(GENERATED)) \
                    and not _in(module, "bmcrypt.bmodel"):
                offenders.append(f"{module} imports {target}")
        if not _in(module, "bmcrypt.crypto"):
            offenders += [f"{module} uses ._dk" for node in ast.walk(tree)
                          if isinstance(node, ast.Attribute) and node.attr == "_dk"]
    assert offenders == []


def test_no_import_cycles():
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ()) if m != FRONT_DOOR else ()):
            if t not in GRAPH:
                continue
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert cycles == []


def test_module_names_say_what_they_own():
    """No two modules share a file name (three layout.py once made the reader guess)."""
    by_name: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            by_name.setdefault(path.name, []).append(module)
    assert {n: ms for n, ms in by_name.items() if len(ms) > 1} == {}
