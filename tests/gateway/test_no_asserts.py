"""No `assert` in gateway/ or lanes/: python -O strips them, and these packages handle requests,
policy files and network replies. Checks there are explicit and raise typed errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["gateway", "lanes"])
def test_no_asserts(package: str) -> None:
    found = [f"{path.relative_to(ROOT)}:{node.lineno}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
             if isinstance(node, ast.Assert)]
    assert not found, f"replace these asserts with explicit checks raising typed errors: {found}"
