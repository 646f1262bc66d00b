"""Scheduling, block accounting, the engine loop and its typed seams are pure Python: importing
them pulls in no torch (the runner and tokenizer protocols name torch in annotations only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("module", ["workers.engine.scheduler", "workers.engine.block_manager",
                                    "workers.engine.engine_loop", "workers.engine.runner",
                                    "workers.engine.tokenizer", "workers.engine.request_error",
                                    "workers.config", "workers.build"])
def test_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
