"""The layer contract of issue 9 (item 9), read from the source with ``ast``.

Every module of ``src/booklore_sync`` is parsed (never imported) and each of its imports
of ``booklore_sync`` — at module level, inside functions (lazy imports count), relative or
absolute, or through ``importlib.import_module("…")`` with a literal name — becomes an
edge between two *units*: a unit is a top-level module or package of ``booklore_sync``
(``store``, ``sync``, ``cli``, …).  Three rules are checked on those edges:

1. layers only point down: each unit belongs to a layer, and a layer imports only the
   layers listed for it in ``MAY_IMPORT`` (so foundations import no library or interface
   module, and only interfaces — and the emulator itself — import the emulator);
2. no import cycle between units (imports under ``if TYPE_CHECKING:`` are left out of
   this rule: they never run, so they cannot close a cycle; they do count for rule 1);
3. no import cycle between the modules inside one unit either (same exclusion).

A plain ``ast`` walk is enough and keeps the dependency list short; import-linter would
add a dependency and a configuration language for the same three rules.

The tables below are data: the coordinator adjusts them as the tree changes.  Known
violations of today's tree are listed in ``ALLOWED`` / ``ALLOWED_CYCLES`` with the reason
and the work that removes them; the test fails on any *new* violation, and warns (in
pytest's summary) about an allowance that no longer happens, so that it gets removed.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "booklore_sync"
SRC = Path(__file__).resolve().parent.parent / "src"

# ---------------------------------------------------------------- the rule table (data)
# unit -> layer.  "" is the root package (``booklore_sync/__init__.py``: the version).
LAYERS: dict[str, str] = {
    "": "neutral",
    "common": "neutral",             # code both the product and the emulator need
    "settings_defaults": "neutral",  # the settings' default values, a plain table
    "store": "foundation",
    "booklore": "foundation",        # the BookLore client
    "koreader": "foundation",        # KOReader's file readers, the importer
    "emulator": "emulator",
    "cli": "interface",
    "entry": "interface",
    "__main__": "interface",
    "menu": "interface",
    "demo": "interface",
    "web": "interface",
    "render": "interface",       # the one renderer of reports
    "interactive": "interface",  # the dialogs' prompts (no misfire), the manual-match prompter
    "terminal": "interface",     # watch on the terminal: the cycle lines, the signals
}
# A unit not named above (config, labels, login, status, sync, watch, and any new
# library module of a seed action) is a library module.
DEFAULT_LAYER = "library"

MAY_IMPORT: dict[str, set[str]] = {
    "neutral": {"neutral"},
    "foundation": {"neutral", "foundation"},
    "library": {"neutral", "foundation", "library"},
    "interface": {"neutral", "foundation", "library", "interface", "emulator"},
    # The emulator is a first-class feature but never depends on the product's logic.
    "emulator": {"neutral", "foundation", "emulator"},
}

# Known violations of today's tree: (importing module, imported module) -> why it is
# still there.  Each entry must still happen, or the test asks for it to be removed.
ALLOWED: dict[tuple[str, str], str] = {
}
# Known cycles -> why: a set of units (``{"cli", "entry"}``), or of dotted module names for
# a cycle inside one unit (``{"booklore_sync.store.db", "booklore_sync.store.queues"}``).
ALLOWED_CYCLES: dict[frozenset[str], str] = {
}


# ---------------------------------------------------------------- reading the source
@dataclass(frozen=True)
class Edge:
    source: str        # importing module, e.g. booklore_sync.sync.matcher
    target: str        # imported module, e.g. booklore_sync.emulator.matchscore
    line: int
    type_only: bool    # under ``if TYPE_CHECKING:``

    def where(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    files = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(unit: str) -> str:
    return LAYERS.get(unit, DEFAULT_LAYER)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, type_only
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_only
                yield from _walk(stmt, type_only)
        else:
            yield from _walk(child, type_only)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported dotted name lives in (``a.b.Name`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node, type_only in _walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import name``: name may be a submodule or an attribute of pkg.
            names = [f"{origin}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            names = [node.args[0].value]
        for name in names:
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                continue
            target = _resolve(name, modules)
            if target is not None and target != module:
                yield Edge(module, target, node.lineno, type_only)  # type: ignore[attr-defined]


def all_edges() -> list[Edge]:
    modules = module_files()
    return [e for m, p in modules.items() for e in imports_of(m, p, modules)]


def find_cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _warn_stale(table: str, stale: list) -> None:
    """An allowance that no longer happens is a warning (branches merge in any order),
    shown in pytest's summary until someone removes it from the table."""
    for entry in stale:
        warnings.warn(f"test_layers: {entry} no longer happens; remove it from {table}",
                      stacklevel=2)


def _of_modules(cycle: frozenset[str]) -> bool:
    """An ``ALLOWED_CYCLES`` key names modules (dotted) rather than units."""
    return any("." in name for name in cycle)


# ---------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return all_edges()


def test_the_reader_sees_the_package(edges):
    modules = module_files()
    assert f"{PACKAGE}.store" in modules and f"{PACKAGE}.cli" in modules
    assert any(e.source == f"{PACKAGE}.cli" for e in edges)  # the walk finds imports


def test_layers_only_point_down(edges):
    broken, seen = [], set()
    for e in edges:
        src, dst = layer_of(unit_of(e.source)), layer_of(unit_of(e.target))
        if dst in MAY_IMPORT[src]:
            continue
        seen.add((e.source, e.target))
        if (e.source, e.target) not in ALLOWED:
            broken.append(f"{e.where()}: a {src} module may not import"
                          f" {unit_of(e.target) or PACKAGE} ({dst} layer)")
    assert not broken, "layer rule broken:\n" + "\n".join(broken)
    _warn_stale("ALLOWED", sorted(set(ALLOWED) - seen))


def test_no_import_cycle_between_units(edges):
    graph: dict[str, set[str]] = {}
    for e in edges:
        a, b = unit_of(e.source), unit_of(e.target)
        if a != b and not e.type_only:
            graph.setdefault(a, set()).add(b)
    cycles = find_cycles(graph)
    witnesses = {c: [e.where() for e in edges if not e.type_only
                     and unit_of(e.source) in c and unit_of(e.target) in c
                     and unit_of(e.source) != unit_of(e.target)] for c in cycles}
    new = [f"{sorted(c)}:\n  " + "\n  ".join(witnesses[c]) for c in cycles
           if c not in ALLOWED_CYCLES]
    assert not new, "import cycle between top-level units:\n" + "\n".join(new)
    _warn_stale("ALLOWED_CYCLES",
                [sorted(c) for c in ALLOWED_CYCLES if not _of_modules(c) and c not in cycles])


def test_no_import_cycle_inside_a_unit(edges):
    graph: dict[str, set[str]] = {}
    for e in edges:
        if unit_of(e.source) == unit_of(e.target) and not e.type_only:
            graph.setdefault(e.source, set()).add(e.target)
    cycles = find_cycles(graph)
    new = [" <-> ".join(sorted(c)) for c in cycles if c not in ALLOWED_CYCLES]
    assert not new, "import cycle between modules:\n" + "\n".join(new)
    _warn_stale("ALLOWED_CYCLES",
                [sorted(c) for c in ALLOWED_CYCLES if _of_modules(c) and c not in cycles])


def test_the_rule_table_is_consistent():
    assert set(LAYERS.values()) | {DEFAULT_LAYER} <= set(MAY_IMPORT)
    for layer, allowed in MAY_IMPORT.items():
        assert layer in allowed and allowed <= set(MAY_IMPORT)
    # nothing below the interfaces may reach the emulator
    assert [lay for lay, ok in MAY_IMPORT.items() if "emulator" in ok] == ["interface", "emulator"]
