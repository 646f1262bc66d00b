import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the gateway runs on asyncio; trio is not a target
