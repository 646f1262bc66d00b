"""Telemetry loads no torch, on either side (tests/test_architecture.py keeps telemetry/ a leaf)."""

from __future__ import annotations

import subprocess
import sys

from tests.test_architecture import ROOT


def test_worker_telemetry_does_not_load_torch() -> None:
    code = ("import sys, telemetry, workers.telemetry, gateway.telemetry, laneway.review.cli; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
