"""The gRPC service refuses bad input with INVALID_ARGUMENT for that request alone; the engine
keeps serving. In-process: a grpc.aio server over the real engine loop with a gated runner."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.workers.engine.gated_engine import VOCAB_SIZE, GatedRunner
from tests.workers.servicer_harness import NUM_BLOCKS, generate, request, serve, wait_for
from workers.servicer import SERVICE_NAME, WorkerServicer


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"lane__max_seq_share": 1.5}, "max_seq_share must be in (0, 1]"),  # once an assert on the engine thread
        ({"lane__max_kv_share": -0.5}, "max_kv_share must be in (0, 1]"),
        ({"sampling__temperature": 7.0}, "temperature must be in [0, 2]"),
        ({"sampling__logprobs": 21}, "logprobs must be in [0, 20]"),
        ({"sampling__max_tokens": 0}, "max_tokens must be at least 1"),
        ({"sampling__max_tokens": 40}, "needs 11 KV blocks at full length; this worker has 8"),
        ({"lane__stream_interval_ms": -5.0}, "lane.stream_interval_ms is -5.0"),
        ({"lane__stream_interval_ms": float("nan")}, "lane.stream_interval_ms is nan"),
    ],
)
def test_bad_request_gets_invalid_argument_and_the_next_is_served(changes: dict[str, object], needle: str) -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        bad = await generate(stub, request("bad", changes=changes))
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and needle in bad.details, bad
        good = await generate(stub, request("good", max_tokens=3))
        assert good.code is None and len(good.token_ids) == 3 and good.finish_reason == pb.FINISH_REASON_LENGTH

    loop = serve(scenario)
    assert loop.fatal_error is None


def test_duplicate_request_id_is_refused_on_the_engine_thread_and_the_original_keeps_streaming() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        # The gate holds the first pass, so "dup" is running (and far from done) when the second
        # "dup" reaches the engine: refused there, by the scheduler, not at the edge.
        first = asyncio.create_task(generate(stub, request("dup", max_tokens=12)))
        await wait_for(lambda: servicer.num_active_streams == 1, "the first stream")
        second = asyncio.create_task(generate(stub, request("dup", max_tokens=2)))
        await wait_for(lambda: servicer.num_active_streams == 2, "the second stream")
        runner.gate.set()
        refused, original = await second, await first
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, refused
        assert "duplicate request_id 'dup'" in refused.details and refused.token_ids == []
        assert original.code is None and len(original.token_ids) == 12, original
        assert original.finish_reason == pb.FINISH_REASON_LENGTH
        after = await generate(stub, request("after", max_tokens=3))
        assert after.code is None and len(after.token_ids) == 3

    loop = serve(scenario)
    assert loop.fatal_error is None
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS


async def _chunks(stub: pb_grpc.WorkerStub, req: pb.GenerateRequest) -> list[pb.GenerateChunk]:
    return [chunk async for chunk in stub.Generate(req, timeout=60)]


def test_n_choices_of_each_prompt_stream_with_their_index_and_one_usage() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        req = request("multi", max_tokens=2, changes={"n": 2, "sampling__echo": True})
        req.prompts.items.extend([pb.Prompt(token_ids=pb.TokenIds(ids=[104, 105])), pb.Prompt(text="yo")])
        chunks = await _chunks(stub, req)
        by_index: dict[int, list[pb.GenerateChunk]] = {}
        for chunk in chunks:
            by_index.setdefault(chunk.index, []).append(chunk)
        assert sorted(by_index) == [0, 1, 2, 3]
        for index, mine in by_index.items():
            assert sum(len(c.token_ids) for c in mine) == 2
            assert mine[-1].finish_reason == pb.FINISH_REASON_LENGTH
            assert [c.prompt_text for c in mine] == ["hi" if index < 2 else "yo"] + [""] * (len(mine) - 1)
        assert [c.HasField("usage") for c in chunks] == [False] * (len(chunks) - 1) + [True]
        usage = chunks[-1].usage
        bos = 1  # the byte tokenizer adds BOS to text prompts only
        assert (usage.prompt_tokens, usage.completion_tokens) == (2 + 2 + bos, 8), "each prompt counted once"
        assert chunks[0].prompt_tokens == 5

    serve(scenario)


def test_choices_beyond_the_cap_and_biases_outside_the_vocabulary_are_refused() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        too_many = await generate(stub, request("many", changes={"n": 129}))
        assert too_many.code == grpc.StatusCode.INVALID_ARGUMENT and "at most 128 choices" in too_many.details
        req = request("bias")
        req.sampling.logit_bias[VOCAB_SIZE] = 1.0
        bias = await generate(stub, req)
        assert bias.code == grpc.StatusCode.INVALID_ARGUMENT and "outside the vocabulary" in bias.details
        prompt_lps = await generate(stub, request("plp", changes={"sampling__prompt_logprobs": 1}))
        assert prompt_lps.code == grpc.StatusCode.INVALID_ARGUMENT, "the gated engine computes none"

    serve(scenario)


def test_abort_by_request_id_ends_every_choice() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        call = asyncio.create_task(generate(stub, request("abort-me", max_tokens=12, changes={"n": 3})))
        await wait_for(lambda: len(servicer.loop.live_ids_of("abort-me")) == 3, "three live choices")
        found = await stub.Abort(pb.AbortRequest(request_id="abort-me"))
        runner.gate.set()
        outcome = await call
        assert found.found and outcome.code is None and outcome.finish_reason == pb.FINISH_REASON_ABORT
        assert len(outcome.token_ids) < 36
        assert not (await stub.Abort(pb.AbortRequest(request_id="abort-me"))).found

    loop = serve(scenario)
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS
@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff\xff", b"\x12\x02\xff\xfe", request("cut").SerializeToString()[:9]],
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
        good = await generate(stub, request("good", max_tokens=3))
        assert good.code is None and len(good.token_ids) == 3

    loop = serve(scenario)
    assert loop.fatal_error is None


def test_every_method_of_the_worker_service_is_registered() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        info = await stub.Info(pb.InfoRequest(), timeout=10)
        load = await stub.Load(pb.LoadRequest(), timeout=10)
        aborted = await stub.Abort(pb.AbortRequest(request_id="nobody"), timeout=10)
        assert info.worker_id == "test-worker" and load.max_num_seqs == 8 and not aborted.found
        runner.gate.set()
        opened = pb.SessionRequest(open=pb.SessionOpen(tag="t", request=request("s").SerializeToString()))
        events = [e async for batch in stub.Session(iter([opened]), timeout=30) for e in batch.events]
        assert events[-1].last and sum(len(e.chunk.token_ids) for e in events) == 3

    serve(scenario)
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["Worker"].methods}
    assert methods == {"Generate", "Session", "Abort", "Load", "Info"}


def test_a_paced_stream_sends_its_first_token_at_once_and_the_rest_with_the_finish() -> None:
    """lane.stream_interval_ms (workers/engine/stream_pacing.py): the engine makes every
    token at once here, so all after the first are held, and the final output takes them along."""
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        plain = [list(c.token_ids) for c in await _chunks(stub, request("plain", max_tokens=6))]
        runner.gate.clear()
        stream = stub.Generate(request("paced", max_tokens=6, changes={"lane__stream_interval_ms": 60_000.0}),
                               timeout=60)
        runner.allow(1)  # the prefill, then its token is read before the rest are made
        paced = [await stream.read()]
        runner.gate.set()
        while (chunk := await stream.read()) is not grpc.aio.EOF:
            paced.append(chunk)
        assert [len(c.token_ids) for c in paced] == [1, 5]
        assert [t for c in paced for t in c.token_ids] == [t for ids in plain for t in ids], "the same tokens"
        assert paced[-1].finish_reason == pb.FINISH_REASON_LENGTH and paced[-1].HasField("usage")
        assert paced[0].prompt_tokens == 3

    serve(scenario)


def test_a_paced_token_leaves_at_once_when_the_engine_steps_slower_than_the_interval() -> None:
    """Pacing holds a token only while the next step should end before it is due
    (workers/engine/stream_pacing.py): here each step waits longer than the interval at the
    runner's gate, so nothing is held, and the first two reads get one token each."""
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        req = request("slow", max_tokens=4, changes={"lane__stream_interval_ms": 50.0})
        stream = stub.Generate(req, timeout=60)
        runner.allow(1)  # the prefill: token 1, sent at once
        first = await stream.read()
        await asyncio.sleep(0.06)  # the decode step waits this long at the gate: longer than the interval
        runner.allow(1)
        second = await asyncio.wait_for(stream.read(), timeout=30)  # the engine makes nothing more meanwhile
        assert (len(first.token_ids), len(second.token_ids)) == (1, 1)
        assert runner.passes == 2 and second.finish_reason == pb.FINISH_REASON_UNSPECIFIED
        runner.gate.set()
        rest = []
        while (chunk := await stream.read()) is not grpc.aio.EOF:
            rest.append(chunk)
        assert sum(len(c.token_ids) for c in rest) == 2 and rest[-1].finish_reason == pb.FINISH_REASON_LENGTH

    serve(scenario)
