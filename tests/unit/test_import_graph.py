"""The package's import graph against the one-way rule (parsed with ast: nothing is imported to check it).

Data flows one way: scenario -> runner -> executor -> cell -> measurements -> results -> analysis -> report/compare.
Checked here: `bench.measure` needs nothing above it; the read side (report, console, findings, compare) reaches
nothing that runs or computes (runner, cell, executors, cost computation, the analysis step, the recommender
registries), not even through another module; and no two modules import each other, directly or in a ring.
Every import counts, function-level (lazy) ones too; only those under `if TYPE_CHECKING:` (annotations) do not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bench"

READ_SIDE = ("bench.report", "bench.console", "bench.findings", "bench.compare")
#: what the read side must never reach: what runs cells, computes derived figures or knows the recommenders
NOT_FROM_READ_SIDE = (
    "bench.runner",
    "bench.cell",
    "bench.replay_cell",
    "bench.executors",
    "bench.cost",
    "bench.analysis.derive",
    "bench.analysis.cells",
    "bench.analysis.sizes",
    "bench.analysis.decoders",
    "bench.recommenders.registry",
    "bench.recommenders.online.registry",
)
#: the only module outside bench.measure that bench.measure may import
MEASURE_MAY_IMPORT = ("bench.errors",)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                stack.extend(child.orelse)  # the else branch runs
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            stack.append(child)


def _resolve(name: str) -> str | None:
    """The bench module `name` denotes: itself, else the nearest enclosing module (a name inside it)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or a name in `base`
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                out.add(resolved)
    return out


GRAPH = {module: _imports(module) for module in MODULES}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reachable(start: str) -> dict[str, list[str]]:
    """Every module `start` reaches, with one import path to it."""
    paths = {start: [start]}
    stack = [start]
    while stack:
        here = stack.pop()
        for nxt in GRAPH[here]:
            if nxt not in paths:
                paths[nxt] = paths[here] + [nxt]
                stack.append(nxt)
    return paths


def test_the_graph_is_read_from_the_package() -> None:
    assert "bench.results" in GRAPH["bench.compare"]  # a module-level import
    assert "bench.analysis.derive" in GRAPH["bench.runner"]  # a function-level (lazy) import counts too
    assert "bench.scenario" not in GRAPH["bench.console"]  # an annotation-only import does not


def test_measure_imports_nothing_above_it() -> None:
    bad = {
        f"{m} -> {t}"
        for m in GRAPH
        if _within(m, ("bench.measure",))
        for t in GRAPH[m]
        if not _within(t, ("bench.measure",) + MEASURE_MAY_IMPORT)
    }
    assert not bad, "bench.measure must need nothing above it: " + "; ".join(sorted(bad))


@pytest.mark.parametrize("reader", sorted(m for m in MODULES if _within(m, READ_SIDE)))
def test_the_read_side_reaches_nothing_that_runs_or_computes(reader: str) -> None:
    reached = _reachable(reader)
    bad = {t: p for t, p in reached.items() if _within(t, NOT_FROM_READ_SIDE)}
    assert not bad, f"{reader} must only read results: " + "; ".join(" -> ".join(p) for p in bad.values())


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    cycles = _cycles()
    assert not cycles, "import cycles (each ring of modules importing one another): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )
