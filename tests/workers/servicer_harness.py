"""An in-process worker service for tests: a grpc.aio server over the real engine loop and
servicer, with a gated runner (tests/workers/engine/gated_engine.py) the scenario steps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.workers.engine.gated_engine import VOCAB_SIZE, GatedRunner, make_gated_engine
from workers.engine.engine_loop import EngineLoop
from workers.servicer import WorkerServicer, add_worker_service
from workers.wire import ModelLimits

MAX_MODEL_LEN = 64
NUM_BLOCKS, BLOCK_SIZE = 8, 4  # 32 tokens of KV: less than one full-length sequence


@dataclass
class Outcome:
    token_ids: list[int] = field(default_factory=list)
    finish_reason: int = pb.FINISH_REASON_UNSPECIFIED
    code: grpc.StatusCode | None = None
    details: str = ""


def request(request_id: str, max_tokens: int = 3, changes: dict[str, object] | None = None) -> pb.GenerateRequest:
    req = pb.GenerateRequest(request_id=request_id, token_ids=pb.TokenIds(ids=[1, 2, 3]),
                             sampling=pb.SamplingParams(max_tokens=max_tokens, ignore_eos=True),
                             lane=pb.LaneInfo(name="streaming", priority=1), endpoint="chat")
    for path, value in (changes or {}).items():  # "sampling__temperature" -> req.sampling.temperature
        *parents, leaf = path.split("__")
        target = req
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)
    return req


async def generate(stub: pb_grpc.WorkerStub, req: pb.GenerateRequest) -> Outcome:
    out = Outcome()
    try:
        async for chunk in stub.Generate(req, timeout=60):
            out.token_ids.extend(chunk.token_ids)
            out.finish_reason = chunk.finish_reason or out.finish_reason
    except grpc.aio.AioRpcError as exc:
        out.code, out.details = exc.code(), exc.details() or ""
    return out


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


Scenario = Callable[[pb_grpc.WorkerStub, WorkerServicer, GatedRunner], Awaitable[None]]


def serve(scenario: Scenario) -> EngineLoop:
    engine, runner = make_gated_engine(num_blocks=NUM_BLOCKS, block_size=BLOCK_SIZE, max_model_len=MAX_MODEL_LEN)
    loop = EngineLoop(engine)
    limits = ModelLimits(max_model_len=MAX_MODEL_LEN, vocab_size=VOCAB_SIZE, eos_token_ids=(257,))

    async def main() -> None:
        servicer = WorkerServicer(loop, engine.tokenizer, limits, model_name="gated", block_size=BLOCK_SIZE,
                                  max_num_seqs=8, worker_id="test-worker")
        server = grpc.aio.server()
        add_worker_service(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.WorkerStub(channel)
                stub.channel = channel  # type: ignore[attr-defined]  # for scenarios that send raw bytes
                await scenario(stub, servicer, runner)
        finally:
            await server.stop(grace=None)

    loop.start()
    try:
        asyncio.run(main())
    finally:
        loop.stop()
    return loop
