"""The gRPC service refuses bad input with INVALID_ARGUMENT for that request alone; the engine
keeps serving. In-process: a grpc.aio server over the real engine loop with a gated runner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pytest

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.workers.engine.gated_engine import VOCAB_SIZE, GatedRunner, make_gated_engine
from workers.engine.engine_loop import EngineLoop
from workers.servicer import SERVICE_NAME, WorkerServicer, add_worker_service
from workers.wire import ModelLimits

MAX_MODEL_LEN = 64
NUM_BLOCKS, BLOCK_SIZE = 8, 4  # 32 tokens of KV: less than one full-length sequence


@dataclass
class Outcome:
    token_ids: list[int] = field(default_factory=list)
    finish_reason: int = pb.FINISH_REASON_UNSPECIFIED
    code: grpc.StatusCode | None = None
    details: str = ""


def _request(request_id: str, max_tokens: int = 3, changes: dict[str, object] | None = None) -> pb.GenerateRequest:
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


async def _generate(stub: pb_grpc.WorkerStub, req: pb.GenerateRequest) -> Outcome:
    out = Outcome()
    try:
        async for chunk in stub.Generate(req, timeout=60):
            out.token_ids.extend(chunk.token_ids)
            out.finish_reason = chunk.finish_reason or out.finish_reason
    except grpc.aio.AioRpcError as exc:
        out.code, out.details = exc.code(), exc.details() or ""
    return out


async def _wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


Scenario = Callable[[pb_grpc.WorkerStub, WorkerServicer, GatedRunner], Awaitable[None]]


def _serve(scenario: Scenario) -> EngineLoop:
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


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"lane__max_seq_share": 1.5}, "max_seq_share must be in (0, 1]"),  # once an assert on the engine thread
        ({"lane__max_kv_share": -0.5}, "max_kv_share must be in (0, 1]"),
        ({"sampling__temperature": 7.0}, "temperature must be in [0, 2]"),
        ({"sampling__logprobs": 21}, "logprobs must be in [0, 20]"),
        ({"sampling__max_tokens": 0}, "max_tokens must be at least 1"),
        ({"sampling__max_tokens": 40}, "needs 11 KV blocks at full length; this worker has 8"),
    ],
)
def test_bad_request_gets_invalid_argument_and_the_next_is_served(changes: dict[str, object], needle: str) -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        bad = await _generate(stub, _request("bad", changes=changes))
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and needle in bad.details, bad
        good = await _generate(stub, _request("good", max_tokens=3))
        assert good.code is None and len(good.token_ids) == 3 and good.finish_reason == pb.FINISH_REASON_LENGTH

    loop = _serve(scenario)
    assert loop.fatal_error is None


def test_duplicate_request_id_is_refused_on_the_engine_thread_and_the_original_keeps_streaming() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        # The gate holds the first pass, so "dup" is running (and far from done) when the second
        # "dup" reaches the engine: refused there, by the scheduler, not at the edge.
        first = asyncio.create_task(_generate(stub, _request("dup", max_tokens=12)))
        await _wait_for(lambda: servicer.num_active_streams == 1, "the first stream")
        second = asyncio.create_task(_generate(stub, _request("dup", max_tokens=2)))
        await _wait_for(lambda: servicer.num_active_streams == 2, "the second stream")
        runner.gate.set()
        refused, original = await second, await first
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, refused
        assert "duplicate request_id 'dup'" in refused.details and refused.token_ids == []
        assert original.code is None and len(original.token_ids) == 12, original
        assert original.finish_reason == pb.FINISH_REASON_LENGTH
        after = await _generate(stub, _request("after", max_tokens=3))
        assert after.code is None and len(after.token_ids) == 3

    loop = _serve(scenario)
    assert loop.fatal_error is None
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff\xff", b"\x12\x02\xff\xfe", _request("cut").SerializeToString()[:9]],
    ids=["not-protobuf", "invalid-utf8-text", "cut-off"],
)
def test_bytes_that_are_not_a_request_get_invalid_argument_and_the_next_is_served(payload: bytes) -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        raw = stub.channel.unary_stream(f"/{SERVICE_NAME}/Generate",  # type: ignore[attr-defined]
                                        request_serializer=None, response_deserializer=pb.GenerateChunk.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in raw(payload, timeout=60):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a laneway.worker.v1.GenerateRequest" in (info.value.details() or "")
        good = await _generate(stub, _request("good", max_tokens=3))
        assert good.code is None and len(good.token_ids) == 3

    loop = _serve(scenario)
    assert loop.fatal_error is None


def test_every_method_of_the_worker_service_is_registered() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        info = await stub.Info(pb.InfoRequest(), timeout=10)
        load = await stub.Load(pb.LoadRequest(), timeout=10)
        aborted = await stub.Abort(pb.AbortRequest(request_id="nobody"), timeout=10)
        assert info.worker_id == "test-worker" and load.max_num_seqs == 8 and not aborted.found

    _serve(scenario)
    assert {m.name for m in pb.DESCRIPTOR.services_by_name["Worker"].methods} == {"Generate", "Abort", "Load", "Info"}
