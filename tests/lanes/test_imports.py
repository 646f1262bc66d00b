"""`lanes` is the shared vocabulary: importing it must not drag in web, RPC, ML or DB stacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ["starlette", "uvicorn", "grpc", "google.protobuf", "torch", "redis", "httpx", "gateway", "workers"]

PROBE = """
import importlib, pkgutil, sys
import lanes
for module in pkgutil.iter_modules(lanes.__path__, "lanes."):
    importlib.import_module(module.name)
forbidden = sys.argv[1:]
print("\\n".join(sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))))
"""


def _imported(forbidden: list[str], probe: str = PROBE) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", probe, *forbidden], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.split()


def test_lanes_imports_no_web_rpc_torch_or_redis() -> None:
    assert _imported(FORBIDDEN) == []


def test_the_probe_sees_what_lanes_imports() -> None:
    # Guards the guard: a module every lanes import pulls in must show up.
    assert "pydantic" in _imported(["pydantic"])
