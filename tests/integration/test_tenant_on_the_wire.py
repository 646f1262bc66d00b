"""The tenant, its weight and the lane's fairness reach the worker's scheduler over real gRPC:
the gateway's WorkerClient (gateway/wire.py) to a grpc.aio worker service (workers/wire.py)
over the real engine loop and scheduler, with a model-free runner."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.job import Job, LaneTicket, Sampling
from gateway.worker_client import WorkerClient
from tests.workers.engine.gated_engine import VOCAB_SIZE, GatedRunner, make_gated_engine
from workers.engine.engine_loop import EngineLoop
from workers.engine.sequence import Sequence
from workers.servicer import WorkerServicer, add_worker_service
from workers.wire import ModelLimits

FAIR = LaneTicket("streaming", 1, False, fair_tenants=True)
FCFS = LaneTicket("interactive", 0, False)


def _job(request_id: str, tenant: str, weight: float, lane: LaneTicket) -> Job:
    return Job(endpoint="chat", tenant=tenant, kind="completion", prompt=[5, 6, 7, 8],
               sampling=Sampling(max_tokens=4, ignore_eos=True), lane=lane, stream=True,
               prompt_tokens_estimate=4, tenant_weight=weight, request_id=request_id)


def test_the_tenant_and_its_weight_reach_the_scheduler_and_are_charged() -> None:
    engine, runner = make_gated_engine()
    loop = EngineLoop(engine)
    limits = ModelLimits(max_model_len=128, vocab_size=VOCAB_SIZE, eos_token_ids=(257,))
    seen: dict[str, Sequence] = {}

    add = engine.scheduler.add

    def recording_add(seq: Sequence) -> None:  # on the engine thread: what the scheduler was given
        seen[seq.seq_id] = seq
        add(seq)

    engine.scheduler.add = recording_add  # type: ignore[method-assign]

    async def main(runner: GatedRunner) -> None:
        servicer = WorkerServicer(loop, engine.tokenizer, limits, model_name="gated", block_size=4,
                                  max_num_seqs=8, worker_id="test-worker")
        server = grpc.aio.server()
        add_worker_service(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = WorkerClient(f"127.0.0.1:{port}")
        try:
            runner.gate.set()
            jobs = [_job("fair-1", "acme", 2.5, FAIR), _job("fcfs-1", "acme", 2.5, FCFS)]
            tokens = await asyncio.gather(*(_drain(client, job) for job in jobs))
            assert [len(t) for t in tokens] == [4, 4]
        finally:
            await client.close()
            await server.stop(grace=None)

    loop.start()
    try:
        asyncio.run(main(runner))
    finally:
        loop.stop()
    fair, fcfs = seen["fair-1"], seen["fcfs-1"]
    assert (fair.tenant, fair.tenant_weight, fair.lane.fair_tenants) == ("acme", 2.5, True)
    assert (fcfs.tenant, fcfs.lane.fair_tenants) == ("acme", False)
    # Charged in the fair lane only, by its weight: 4 prompt tokens (0.25 each), then 3 decodes.
    assert engine.scheduler.tenant_counter("streaming", "acme") == pytest.approx((4 * 0.25 + 3) / 2.5)
    assert engine.scheduler.tenant_counter("interactive", "acme") == 0


async def _drain(client: WorkerClient, job: Job) -> list[int]:
    tokens: list[int] = []
    async for chunk in client.generate(job):
        tokens.extend(chunk.token_ids)
    return tokens
