from __future__ import annotations

from collections.abc import Iterator

import pytest

from laneway.load.fake_server import FakeBehaviour, FakeServer


@pytest.fixture
def fake_server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    """A fresh fake server per test; parametrize indirectly with a FakeBehaviour."""
    behaviour = getattr(request, "param", FakeBehaviour(ttft_s=0.01, tbt_s=0.002))
    server = FakeServer(behaviour).start()
    yield server
    server.stop()
