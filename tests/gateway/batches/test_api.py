"""The Batch API object the state holds: Redis-backed, or disabled with a clear answer."""

from __future__ import annotations

import pytest

from gateway.batches.api import DisabledBatchApi
from gateway.errors import APIError

pytestmark = pytest.mark.anyio


def test_without_redis_the_store_is_a_503_that_names_what_is_missing() -> None:
    with pytest.raises(APIError) as refused:
        DisabledBatchApi().store()
    err = refused.value
    assert (err.status, err.type, err.code) == (503, "service_unavailable", "redis_not_configured")
    assert "--redis-url" in err.message and "LANEWAY_REDIS_URL" in err.message
    assert err.body()["error"]["code"] == "redis_not_configured"  # OpenAI-style body


async def test_without_redis_there_is_no_runner_to_start_or_stop() -> None:
    batches = DisabledBatchApi()
    batches.start()
    await batches.close()
    with pytest.raises(APIError):  # still disabled afterwards: nothing was set up behind it
        batches.store()
