"""The import rules of docs/architecture.md, enforced; and generated code in step with its source.

Floors, lowest first:

    lanes/  telemetry/  proto/laneway_proto     shared contracts: import no other Laneway package
    gateway/      workers/                      the two processes: import the floor below, never each other
    laneway/                                    the CLI: may import everything; nothing imports it

Imports are read from the source with `ast`, so a rule also holds in code that no test
happens to run: an import inside a function counts. For the direction rules an import
under `if TYPE_CHECKING:` counts too (a type is a dependency); for cycles it does not
(it never runs).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Import name -> folder, for every first-party package.
PACKAGES = {
    "lanes": ROOT / "lanes",
    "telemetry": ROOT / "telemetry",
    "laneway_proto": ROOT / "proto" / "laneway_proto",
    "gateway": ROOT / "gateway",
    "workers": ROOT / "workers",
    "laneway": ROOT / "laneway",
}
SHARED = ("lanes", "telemetry", "laneway_proto")
WEB_RPC_DB_TORCH = {"torch", "starlette", "uvicorn", "grpc", "redis", "httpx"}


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name (relative imports resolved)
    line: int
    is_from_base: bool  # `from target import ...`: runs target and reads its namespace
    is_type_only: bool  # under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool  # an __init__.py
    imports: tuple[Import, ...]

    @property
    def own_packages(self) -> set[str]:
        """Packages that are already being imported whenever this module runs (Python imports parents first)."""
        parts = self.name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + (1 if self.is_package else 0))}


# ---- reading the source ------------------------------------------------------------------------

def read_modules(packages: Mapping[str, Path]) -> dict[str, Module]:
    found: dict[str, tuple[Path, bool]] = {}
    for name, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    modules = {}
    for name, (path, is_package) in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        imports = tuple(_imports_of(tree, name, is_package, set(found)))
        modules[name] = Module(name, path, is_package, imports)
    return modules


def _imports_of(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[Import]:
    for node, is_type_only in _import_nodes(tree, is_type_only=False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, False, is_type_only)
            continue
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[:len(package) - (node.level - 1)] + ([base] if base else []))
        yield Import(base, node.lineno, True, is_type_only)
        for alias in node.names:
            if f"{base}.{alias.name}" in known:  # `from pkg import submodule` imports the submodule
                yield Import(f"{base}.{alias.name}", node.lineno, False, is_type_only)


def _import_nodes(node: ast.AST, is_type_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, is_type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from _import_nodes(ast.Module(body=child.body, type_ignores=[]), True)
            yield from _import_nodes(ast.Module(body=child.orelse, type_ignores=[]), is_type_only)
        else:
            yield from _import_nodes(child, is_type_only)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@functools.cache
def _laneway() -> dict[str, Module]:
    return read_modules(PACKAGES)


def imported_top_names(package: str) -> dict[str, set[str]]:
    """File -> top-level names it imports (first-party and third-party), for every module of a package."""
    return {str(m.path.relative_to(ROOT)): {i.target.split(".")[0] for i in m.imports if i.target}
            for m in _laneway().values() if m.name.split(".")[0] == package}


# ---- the module graph and its cycles -----------------------------------------------------------

def dependency_graph(modules: Mapping[str, Module]) -> dict[str, dict[str, Import]]:
    """Module -> {module it makes run first: the import that does it}, run-time imports only.

    Importing a.b.c runs a/__init__ and a/b/__init__ first, so it depends on them too; but
    a module inside package a depends on a/__init__ only where it reads a's namespace
    (`from a import name`): otherwise a/__init__ is already running by the time it runs.
    """
    graph: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for module in modules.values():
        for imp in module.imports:
            if imp.is_type_only:
                continue
            parts = imp.target.split(".")
            ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
            needed = ancestors - module.own_packages
            if imp.is_from_base:
                needed.add(imp.target)
            for dep in sorted(needed & set(modules) - {module.name}):
                graph[module.name].setdefault(dep, imp)
    return graph


def cycles(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """Groups of modules that import one another in a ring (strongly connected components), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def shortest_ring(graph: Mapping[str, Mapping[str, object]], group: list[str]) -> list[str]:
    """One shortest cycle through the group's first module, as [m0, m1, ..., m0]."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    todo = deque([start])
    while todo:
        v = todo.popleft()
        for w in graph[v]:
            if w == start:
                ring = [v]
                while ring[-1] != start:
                    ring.append(came_from[ring[-1]])
                return [*reversed(ring), start]
            if w in members and w not in came_from:
                came_from[w] = v
                todo.append(w)
    raise AssertionError(f"no ring through {start} in {group}")


def describe(modules: Mapping[str, Module], graph: Mapping[str, Mapping[str, Import]], group: list[str]) -> str:
    def step(a: str, b: str) -> str:
        return f"{a} -> {b} ({modules[a].path.relative_to(ROOT)}:{graph[a][b].line})"

    ring = shortest_ring(graph, group)
    inside = [step(a, b) for a in group for b in graph[a] if b in group]
    return (f"{len(group)} modules: {', '.join(group)}\n    shortest ring: {' -> '.join(ring)}\n"
            f"    imports inside the group:\n      " + "\n      ".join(inside))


# ---- the rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("package", SHARED)
def test_shared_contracts_import_no_other_laneway_package_nor_web_rpc_db_or_torch(package: str) -> None:
    # proto is the gRPC contract itself: grpc (and protobuf) are its business.
    third_party = WEB_RPC_DB_TORCH - {"grpc"} if package == "laneway_proto" else WEB_RPC_DB_TORCH
    forbidden = (set(PACKAGES) - {package}) | third_party
    bad = {f: sorted(names & forbidden) for f, names in imported_top_names(package).items() if names & forbidden}
    assert not bad, f"{package} is a shared contract and must not import {sorted(forbidden)}: {bad}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("gateway", {"workers", "laneway", "torch"}),
        ("workers", {"gateway", "laneway", "starlette", "uvicorn"}),
    ],
)
def test_import_directions(package: str, forbidden: set[str]) -> None:
    bad = {f: sorted(names & forbidden) for f, names in imported_top_names(package).items() if names & forbidden}
    assert not bad, f"{package} must not import {sorted(forbidden)}: {bad}"


def test_no_import_cycles_between_first_party_modules() -> None:
    modules = _laneway()
    graph = dependency_graph(modules)
    found = cycles(graph)
    report = "\n  ".join(describe(modules, graph, group) for group in found)
    assert not found, f"{len(found)} import cycle(s) between first-party modules:\n  {report}"


def test_the_import_reader_sees_what_the_rules_rely_on(tmp_path: Path) -> None:
    # Guards the guard, on made-up packages: relative imports, a submodule named in a
    # from-import, a function-level import, TYPE_CHECKING, and when a package's __init__ counts.
    pkg, app = tmp_path / "pkg", tmp_path / "app"
    (pkg / "sub").mkdir(parents=True)
    app.mkdir()
    (pkg / "__init__.py").write_text("from pkg.a import A\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nfrom .sub import c\nA = 1\n"
                              "if TYPE_CHECKING:\n    from pkg.b import B\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import A\n")  # reads pkg's namespace: needs pkg/__init__
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import pkg.b\n")  # inside pkg: pkg/__init__ is already running
    (app / "__init__.py").write_text("")
    (app / "main.py").write_text("import pkg.sub.c\n")  # outside pkg: runs both __init__s first
    modules = read_modules({"pkg": pkg, "app": app})
    graph = dependency_graph(modules)
    assert "pkg.b" in {i.target for i in modules["pkg.a"].imports}  # read, for the direction rules
    assert set(graph["pkg.a"]) == {"pkg.sub", "pkg.sub.c"}  # ... but not an edge: TYPE_CHECKING never runs
    assert set(graph["pkg.sub.c"]) == {"pkg.b"}
    assert set(graph["pkg.b"]) == {"pkg"}
    assert set(graph["app.main"]) == {"pkg", "pkg.sub", "pkg.sub.c"}
    found = cycles(graph)
    assert found == [["pkg", "pkg.a", "pkg.b", "pkg.sub.c"]]
    assert shortest_ring(graph, found[0]) == ["pkg", "pkg.a", "pkg.sub.c", "pkg.b", "pkg"]


# ---- what must load without torch, and generated code ------------------------------------------

@pytest.mark.parametrize("module", ["workers.engine.scheduler", "workers.engine.block_manager",
                                    "workers.engine.sequence", "workers.engine.detokenizer"])
def test_pure_python_engine_modules_do_not_load_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_gateway_app_does_not_load_torch() -> None:
    code = "import sys, gateway.app; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_launcher_does_not_load_torch() -> None:
    # `laneway serve` imports child_env from the worker side (workers/parent_watch.py); the
    # gateway it runs in-process must stay torch-free.
    code = "import sys, laneway.serve; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_generated_stubs_match_the_proto() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
