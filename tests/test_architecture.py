"""Import directions and generated code, enforced (DESIGN.md: the pieces)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("gateway", {"workers", "torch"}),
        ("lanes", {"starlette", "grpc", "torch", "redis", "gateway", "workers", "uvicorn"}),
        ("workers", {"gateway", "starlette", "uvicorn"}),
    ],
)
def test_import_directions(package: str, forbidden: set[str]) -> None:
    bad = {f: sorted(names & forbidden) for f, names in _imports(package).items() if names & forbidden}
    assert not bad, f"{package} must not import {sorted(forbidden)}: {bad}"


@pytest.mark.parametrize("module", ["workers.engine.scheduler", "workers.engine.block_manager",
                                    "workers.engine.sequence", "workers.engine.detokenizer"])
def test_pure_python_engine_modules_do_not_load_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_gateway_app_does_not_load_torch() -> None:
    code = "import sys, gateway.app; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_generated_stubs_match_the_proto() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
