from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.telemetry.fake_worker import FakeWorker


@pytest.fixture
def fake_worker() -> Iterator[FakeWorker]:
    worker = FakeWorker(num_tokens=4).start()
    yield worker
    worker.stop()
