"""In-process gRPC workers that misbehave on cue, for the gateway's failure handling.

Every worker streams the same deterministic letters for a prompt (token i of prompt p is
a letter fixed by p and i), so a stream resumed on another worker can be checked against
the stream one worker would have sent. Cues, per worker:
- `die_after`: after this many chunks the worker goes down mid-stream (UNAVAILABLE, as a
  killed or draining worker's calls end);
- `engine_fails_after`: after this many chunks its engine fails: NOT_SERVING, then INTERNAL;
- `internal_for`: prompts this worker fails with INTERNAL while staying healthy;
- `engine_fails_for`: prompts that fail its engine: NOT_SERVING first, then INTERNAL (as
  workers/main.py does);
- `invalid_for`: prompts refused with INVALID_ARGUMENT;
- `pause_after`: after this many chunks the stream waits until its call is cut;
- `sessions=False`: no Session method (the gateway falls back to a Generate call per stream).
Streams run the same code on both wires (workers/session.py carries them on a Session).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from workers.session import StreamFailure, run_session
from workers.wire import UndecodableRequest


def letter(prompt: str, i: int) -> int:
    return 65 + (zlib.crc32(prompt.encode()) + 7 * i) % 26


def expected_text(prompt: str, num_tokens: int) -> str:
    return "".join(chr(letter(prompt, i)) for i in range(num_tokens))


@dataclass
class CueWorker(pb_grpc.WorkerServicer):
    name: str
    health_servicer: health.aio.HealthServicer
    die_after: int | None = None
    engine_fails_after: int | None = None
    internal_for: set[str] = field(default_factory=set)
    engine_fails_for: set[str] = field(default_factory=set)
    invalid_for: set[str] = field(default_factory=set)
    calls: list[tuple[str, list[int]]] = field(default_factory=list)  # (prompt, resume_token_ids)
    is_down: bool = False
    sessions: bool = True  # False: no Session method (UNIMPLEMENTED), as a worker from before it
    pause_after: int | None = None  # after this many chunks the stream waits until its call ends
    wires: list[str] = field(default_factory=list)  # "Session" or "Generate", a call each
    cancelled: list[str] = field(default_factory=list)  # prompts of streams the gateway cancelled

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
                       ) -> AsyncIterator[pb.GenerateChunk]:
        self.wires.append("Generate")
        try:
            async for chunk in self.chunks(request):
                yield chunk
        except StreamFailure as failure:
            await context.abort(failure.code, failure.message)

    async def Session(self, request_iterator: AsyncIterator[pb.SessionRequest], context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[pb.SessionBatch]:
        if not self.sessions:  # a worker from before Session
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        self.wires.append("Session")
        async for batch in run_session(request_iterator, lambda request, _metadata: self.chunks(request)):
            yield batch

    async def chunks(self, request: pb.GenerateRequest | UndecodableRequest) -> AsyncGenerator[pb.GenerateChunk, None]:
        if isinstance(request, UndecodableRequest):
            raise StreamFailure(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        prompt, resumed = request.text, list(request.resume_token_ids)
        self.calls.append((prompt, resumed))
        if self.is_down:
            raise StreamFailure(grpc.StatusCode.UNAVAILABLE, "worker is down")
        if prompt in self.invalid_for:
            raise StreamFailure(grpc.StatusCode.INVALID_ARGUMENT, "prompt refused")
        if prompt in self.internal_for:
            raise StreamFailure(grpc.StatusCode.INTERNAL, "this request failed here")
        if prompt in self.engine_fails_for:
            await self.go_down()
            raise StreamFailure(grpc.StatusCode.INTERNAL, "engine failure: RuntimeError")
        num_tokens = request.sampling.max_tokens
        for n, i in enumerate(range(len(resumed), num_tokens)):
            if self.die_after is not None and n == self.die_after:
                await self.go_down()
                raise StreamFailure(grpc.StatusCode.UNAVAILABLE, "worker died")
            if self.pause_after is not None and n == self.pause_after:
                try:
                    await asyncio.Event().wait()  # until the gateway cancels the stream, or the call ends
                except asyncio.CancelledError:
                    self.cancelled.append(prompt)
                    raise
            if self.engine_fails_after is not None and n == self.engine_fails_after:
                await self.go_down()
                raise StreamFailure(grpc.StatusCode.INTERNAL, "engine failure: RuntimeError")
            token = letter(prompt, i)
            chunk = pb.GenerateChunk(token_ids=[token], text=chr(token), prompt_tokens=len(prompt) if n == 0 else 0)
            if i == num_tokens - 1:
                chunk.finish_reason = pb.FINISH_REASON_LENGTH
                chunk.usage.CopyFrom(pb.Usage(prompt_tokens=len(prompt), completion_tokens=num_tokens))
            yield chunk
            await asyncio.sleep(0)  # one token a turn, as a worker's steps come

    async def go_down(self) -> None:
        self.is_down = True
        await self.health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReport:
        return pb.LoadReport(max_num_seqs=64, num_total_kv_blocks=100, num_free_kv_blocks=100)

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        return pb.InfoResponse(model="cue", max_model_len=4096, block_size=16, vocab_size=256, worker_id=self.name,
                               has_session=self.sessions)


@dataclass
class RunningCueWorker:
    servicer: CueWorker
    server: grpc.aio.Server
    address: str


SESSIONS = True  # whether workers started from now on have a Session method (a test may switch it)


async def start_cue_worker(name: str, **cues: object) -> RunningCueWorker:
    cues.setdefault("sessions", SESSIONS)
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    servicer = CueWorker(name, health_servicer, **cues)  # type: ignore[arg-type]
    pb_grpc.add_WorkerServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return RunningCueWorker(servicer, server, f"127.0.0.1:{port}")
