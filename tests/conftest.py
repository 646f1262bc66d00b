"""Suite-wide: whatever a test starts keeps its data (trace files, a launched Redis) out of the checkout."""

from __future__ import annotations

import os
import shutil
import tempfile

_OWN_DATA_DIR: str | None = None


def pytest_configure(config) -> None:
    # In-process gateways and workers that trace write JSON lines under LANEWAY_DATA_DIR
    # (default: .laneway in the working directory, i.e. the checkout). Tests that need a
    # particular directory still set their own.
    global _OWN_DATA_DIR
    if "LANEWAY_DATA_DIR" not in os.environ:
        _OWN_DATA_DIR = tempfile.mkdtemp(prefix="laneway-test-data-")
        os.environ["LANEWAY_DATA_DIR"] = _OWN_DATA_DIR


def pytest_unconfigure(config) -> None:
    if _OWN_DATA_DIR is not None:
        shutil.rmtree(_OWN_DATA_DIR, ignore_errors=True)
