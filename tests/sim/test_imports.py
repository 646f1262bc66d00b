"""A plan is pure Python: no torch, no HTTP client (it must run where neither is wanted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plan_and_virtual_worker_load_neither_torch_nor_httpx() -> None:
    code = ("import sys, laneway.plan.cli, laneway.plan.capacity, workers.sim.virtual_worker, workers.sim.presets; "
            "bad = [m for m in ('torch', 'httpx') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
