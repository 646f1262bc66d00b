"""Session: many streams on one call, each with what Generate would send it, a step's events
in one batch. In-process: a grpc.aio server over the real engine loop with a gated runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.workers.engine.gated_engine import GatedRunner
from tests.workers.servicer_harness import NUM_BLOCKS, request, serve, wait_for
from workers.servicer import SERVICE_NAME, WorkerServicer


class Caller:
    """One Session call: opens and cancels streams, and keeps every batch it got."""

    def __init__(self, stub: pb_grpc.WorkerStub) -> None:
        self._outgoing: asyncio.Queue[pb.SessionRequest | None] = asyncio.Queue()
        self.call = stub.Session(self._requests(), timeout=60)
        self.batches: asyncio.Queue[pb.SessionBatch] = asyncio.Queue()
        self.received: list[pb.SessionBatch] = []
        self.status: grpc.StatusCode | None = None
        self._reader = asyncio.create_task(self._read())

    def open(self, tag: str, req: pb.GenerateRequest | bytes) -> None:
        raw = req if isinstance(req, bytes) else req.SerializeToString()
        self._outgoing.put_nowait(pb.SessionRequest(open=pb.SessionOpen(tag=tag, request=raw)))

    def cancel(self, tag: str) -> None:
        self._outgoing.put_nowait(pb.SessionRequest(cancel=tag))

    async def finish(self) -> grpc.StatusCode | None:
        """Close our side; wait for the call to end."""
        self._outgoing.put_nowait(None)
        await self._reader
        return self.status

    def events(self, tag: str) -> list[pb.SessionEvent]:
        return [e for b in self.received for e in b.events if e.tag == tag]

    def tokens(self, tag: str) -> list[int]:
        return [t for e in self.events(tag) for t in e.chunk.token_ids]

    async def _requests(self) -> AsyncIterator[pb.SessionRequest]:
        while (msg := await self._outgoing.get()) is not None:
            yield msg

    async def _read(self) -> None:
        try:
            async for batch in self.call:
                self.received.append(batch)
                self.batches.put_nowait(batch)
            self.status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            self.status = exc.code()
        except asyncio.CancelledError:
            if not self.call.cancelled():
                raise
            self.status = grpc.StatusCode.CANCELLED  # we cancelled it


def test_each_engine_step_of_several_streams_leaves_as_one_batch() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        caller = Caller(stub)
        for tag in "abc":
            caller.open(tag, request(f"req-{tag}", max_tokens=4))
        await wait_for(lambda: servicer.num_active_streams == 3, "three streams")
        ended: set[str] = set()
        while ended != {"a", "b", "c"}:
            runner.allow(1)  # one engine step at a time: its outputs, then nothing until the next
            batch = await asyncio.wait_for(caller.batches.get(), 30)
            chunk_tags = [e.tag for e in batch.events if e.HasField("chunk")]
            assert len(chunk_tags) == len(set(chunk_tags)), f"one step, one chunk a stream: {batch}"
            ended |= {e.tag for e in batch.events if e.last}
        assert await caller.finish() == grpc.StatusCode.OK
        # Every step came as exactly one batch: as many batches as passes.
        assert len(caller.received) == runner.passes
        assert max(len({e.tag for e in b.events}) for b in caller.received) == 3, "a step of all three streams"
        for tag in "abc":
            events = caller.events(tag)
            assert len(caller.tokens(tag)) == 4 and events[-1].last and events[-1].status_code == 0
            assert [e.chunk.finish_reason for e in events if e.HasField("chunk")][-1] == pb.FINISH_REASON_LENGTH

    loop = serve(scenario)
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS


def test_a_refused_request_ends_its_own_stream_with_generates_status_and_the_session_goes_on() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        caller = Caller(stub)
        caller.open("bytes", b"\xff\xff\xff\xff")
        caller.open("hot", request("hot", changes={"sampling__temperature": 7.0}))
        caller.open("good", request("good", max_tokens=3))
        caller.open("good", request("good-again"))  # its tag is still open
        await wait_for(lambda: any(e.last for e in caller.events("good") if e.status_code == 0), "the good stream")
        assert await caller.finish() == grpc.StatusCode.OK

        def failure(tag: str) -> tuple[grpc.StatusCode, str, str]:
            (event,) = caller.events(tag)
            assert event.last and not event.HasField("chunk")
            code = next(c for c in grpc.StatusCode if c.value[0] == event.status_code)
            return code, event.status_message, event.error_code

        code, message, _ = failure("bytes")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "is not a laneway.worker.v1.GenerateRequest" in message
        code, message, error_code = failure("hot")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "temperature must be in [0, 2]" in message
        assert error_code, "the error code Generate sends in its trailing metadata"
        good = caller.events("good")
        refused = [e for e in good if e.status_code != 0]
        assert len(refused) == 1 and "already open" in refused[0].status_message
        assert len(caller.tokens("good")) == 3

    serve(scenario)


def test_a_cancel_ends_that_stream_alone_and_frees_its_blocks() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        caller = Caller(stub)
        caller.open("long", request("long", max_tokens=12))
        caller.open("short", request("short", max_tokens=3))
        await wait_for(lambda: servicer.num_active_streams == 2, "both streams")
        runner.allow(1)
        await asyncio.wait_for(caller.batches.get(), 30)
        caller.cancel("long")
        await wait_for(lambda: servicer.num_active_streams == 1, "the cancelled stream to end")
        runner.gate.set()  # the engine takes the abort at its next step
        await wait_for(lambda: not servicer.loop.is_live("long"), "the engine to drop the cancelled stream")
        await wait_for(lambda: any(e.last for e in caller.events("short")), "the short stream's end")
        assert await caller.finish() == grpc.StatusCode.OK
        assert len(caller.tokens("short")) == 3
        assert not any(e.last for e in caller.events("long")), "a cancelled stream gets no more events"
        assert len(caller.tokens("long")) < 12

    loop = serve(scenario)
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS


def test_a_caller_that_goes_away_takes_its_streams_with_it() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        caller = Caller(stub)
        caller.open("x", request("x", max_tokens=12))
        caller.open("y", request("y", max_tokens=12))
        await wait_for(lambda: servicer.num_active_streams == 2, "both streams")
        caller.call.cancel()
        await wait_for(lambda: servicer.num_active_streams == 0, "the streams to end with the call")
        runner.gate.set()
        await wait_for(lambda: not servicer.loop.is_live("x") and not servicer.loop.is_live("y"), "aborts")
        assert await caller.finish() == grpc.StatusCode.CANCELLED

    loop = serve(scenario)
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS


def test_a_draining_worker_ends_its_sessions_once_their_streams_are_done() -> None:
    """An idle session must not hold a draining worker's server.stop() up for its grace."""

    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        idle, busy = Caller(stub), Caller(stub)
        busy.open("s", request("s", max_tokens=3))
        await wait_for(lambda: servicer.num_active_streams == 1, "the busy session's stream")
        servicer.is_draining = True
        await asyncio.wait_for(idle._reader, 30)  # ends at once: nothing open on it
        assert idle.status == grpc.StatusCode.OK and not idle.received
        busy.open("late", request("late"))  # refused, as Generate refuses it
        await wait_for(lambda: bool(busy.events("late")), "the late stream's answer")
        (late,) = busy.events("late")
        assert late.last and late.status_code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert not busy._reader.done(), "a session with a stream still running stays"
        new = Caller(stub)
        await asyncio.wait_for(new._reader, 30)
        assert new.status == grpc.StatusCode.UNAVAILABLE, "no new session on a draining worker"
        runner.gate.set()
        await asyncio.wait_for(busy._reader, 30)
        assert busy.status == grpc.StatusCode.OK and len(busy.tokens("s")) == 3 and busy.events("s")[-1].last

    serve(scenario)


def test_a_message_that_is_not_a_session_request_ends_that_call_alone_with_invalid_argument() -> None:
    async def scenario(stub: pb_grpc.WorkerStub, servicer: WorkerServicer, runner: GatedRunner) -> None:
        runner.gate.set()
        raw = stub.channel.stream_stream(f"/{SERVICE_NAME}/Session",  # type: ignore[attr-defined]
                                         request_serializer=None, response_deserializer=pb.SessionBatch.FromString)
        good_open = pb.SessionRequest(open=pb.SessionOpen(tag="a", request=request("a", max_tokens=12)
                                                          .SerializeToString())).SerializeToString()
        call = raw(iter([good_open, b"\xff\xff\xff\xff"]), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "session message is not a laneway.worker.v1.SessionRequest" in (info.value.details() or "")
        await wait_for(lambda: servicer.num_active_streams == 0, "the call's stream to be cancelled with it")
        other = Caller(stub)
        other.open("b", request("b"))
        assert await other.finish() == grpc.StatusCode.OK and len(other.tokens("b")) == 3

    loop = serve(scenario)
    assert loop.engine.scheduler.block_manager.num_free_blocks == NUM_BLOCKS
