"""The gateway's state: complete when built, frozen, and drained through begin_drain()."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.batches.api import DisabledBatchApi
from gateway.config import GatewayConfig
from gateway.job import Job, LaneTicket, Sampling
from gateway.model_catalog import ModelCatalog
from gateway.policy_store import PolicyStore
from gateway.ratelimit import NoLimits
from gateway.service import GenerationService, ImmediateDispatcher
from gateway.state import GatewayState
from gateway.worker_pool import WorkerPool

pytestmark = pytest.mark.anyio


class RecordingBatchApi:
    """Stands in for RedisBatchApi: counts how often its runner was stopped."""

    def __init__(self) -> None:
        self.num_closes = 0

    def store(self):
        raise NotImplementedError("not used here")

    def start(self) -> None:
        pass

    async def close(self) -> None:
        self.num_closes += 1


class RecordingDispatcher(ImmediateDispatcher):
    def __init__(self, pool: WorkerPool) -> None:
        super().__init__(pool)
        self.num_closes = 0

    async def close(self) -> None:
        self.num_closes += 1


def _state(batches=None) -> GatewayState:
    config = GatewayConfig()
    pool = WorkerPool(())
    dispatcher = RecordingDispatcher(pool)
    return GatewayState(config, PolicyStore(config.policy_path), pool, GenerationService(pool, dispatcher),
                        ModelCatalog(pool), NoLimits(), batches if batches is not None else DisabledBatchApi())


def test_the_state_is_frozen() -> None:
    state = _state()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.limiter = NoLimits()  # type: ignore[misc]


async def test_begin_drain_flags_readiness_and_stops_the_batch_runner_once() -> None:
    batches = RecordingBatchApi()
    state = _state(batches)
    assert not state.is_draining
    assert await state.begin_drain() is True
    assert state.is_draining and batches.num_closes == 1
    assert await state.begin_drain() is False  # a second signal: nothing is stopped twice
    assert state.is_draining and batches.num_closes == 1


async def test_refuse_queued_closes_the_dispatcher() -> None:
    state = _state()
    await state.refuse_queued()
    assert state.service.dispatcher.num_closes == 1  # type: ignore[attr-defined]


async def test_a_gateway_without_redis_admits_everything_without_headers() -> None:
    state = _state()
    job = Job(endpoint="chat", tenant="anonymous", kind="completion", prompt="hi", sampling=Sampling(max_tokens=4),
              lane=LaneTicket("interactive", 0, False), stream=False, prompt_tokens_estimate=1_000_000)
    reservation = await state.limiter.admit(job, state.policy_store.policy)
    assert reservation.headers == {} and state.limiter.num_unchecked == 0
