"""laneway.telemetry is a leaf both sides import: it must import neither side (nor torch)."""

from __future__ import annotations

import subprocess
import sys

from tests.test_architecture import ROOT, _imports


def test_shared_telemetry_imports_neither_gateway_nor_workers() -> None:
    forbidden = {"gateway", "workers", "torch", "starlette", "lanes"}
    bad = {f: sorted(n & forbidden) for f, n in _imports("laneway/telemetry").items() if n & forbidden}
    assert not bad, bad


def test_worker_telemetry_does_not_load_torch() -> None:
    code = ("import sys, workers.telemetry, gateway.telemetry, laneway.review.cli; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
