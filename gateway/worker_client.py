"""One gRPC client per worker: generate stream, load, health.

Streams share one Session call per worker (gateway/worker_session.py): each engine step's
tokens for all of them arrive in one message. A worker without Session (its Info says so)
gets a Generate call per stream; `use_session=False` asks for that. Either way a stream
fails the same way.

A failed call is either the worker's (it is down, draining or its engine died: take it out
of rotation and move the job) or the request's (bad input, a full queue, or an error only
this request met: tell the client, keep the worker). The status says which, except for
INTERNAL and UNKNOWN, which either can raise; for those the worker's health decides, read
at once. A worker whose engine fails reports NOT_SERVING before any stream hears of it
(workers/main.py), so one bad request never takes a healthy worker out of rotation, and
never empties the pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.job import Chunk, Job, WorkerLoad
from gateway.wire import from_chunk, from_load, to_request
from gateway.worker_session import SessionLost, WorkerSession
from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from laneway_proto.error_codes import ERROR_CODE_KEY

log = logging.getLogger(__name__)


class WorkerUnavailable(Exception):
    """The worker could not take or finish the call (down, draining, crashed)."""

    def __init__(self, message: str, *, engine_failed: bool = False) -> None:
        super().__init__(message)
        # It failed the call and then said it is not serving: its engine died under this request.
        self.engine_failed = engine_failed


class WorkerRejected(Exception):
    """The worker refused the request (bad input, full) or failed it alone while staying
    healthy; not retried elsewhere, and the worker stays in rotation."""

    def __init__(self, code: grpc.StatusCode, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_code = error_code  # the worker's reason (laneway_proto.error_codes), when it sent one


# The worker could not serve at all: unreachable, draining, shutting down mid-call.
_WORKER_DOWN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
# The request's failure or the worker's: its health, checked now, decides.
_ASK_HEALTH = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
PROBE_TIMEOUT_S = 0.5
_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


@dataclass
class ModelInfo:
    model: str
    max_model_len: int
    block_size: int
    vocab_size: int
    worker_id: str
    has_session: bool = False


def _error_code(exc: grpc.aio.AioRpcError) -> str | None:
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_CODE_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


class WorkerClient:
    def __init__(self, address: str, use_session: bool = True) -> None:
        self.address = address
        self.channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.http2.max_pings_without_data", 0), ("grpc.keepalive_permit_without_calls", 1),
        ])
        self.stub = pb_grpc.WorkerStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)
        self.info: ModelInfo | None = None
        self.load = WorkerLoad()
        self.is_healthy = False
        self.num_inflight = 0  # streams this gateway has open on the worker
        # Streams share one Session call (gateway/worker_session.py) unless the worker predates it.
        self.use_session = use_session
        self._session: WorkerSession | None = None

    async def generate(self, job: Job, resume_token_ids: Sequence[int] = ()) -> AsyncGenerator[Chunk, None]:
        """Stream chunks (after `resume_token_ids`, when resuming another worker's stream).
        Raises WorkerUnavailable (the worker is down: move the job elsewhere) or WorkerRejected
        (the worker said no, or failed this request alone, for a reason the client must hear)."""
        request = to_request(job, resume_token_ids)
        self.num_inflight += 1
        try:
            stream = self._session_stream if self.uses_session else self._call_stream
            async with contextlib.aclosing(stream(request, job.trace_headers)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self.num_inflight -= 1

    @property
    def uses_session(self) -> bool:
        """Streams go on the shared Session call (a worker from before it says so in Info)."""
        return self.use_session and self.info is not None and self.info.has_session

    async def _call_stream(self, request: pb.GenerateRequest, metadata: Mapping[str, str]
                           ) -> AsyncGenerator[Chunk, None]:
        call = self.stub.Generate(request, metadata=tuple(metadata.items()))
        try:
            async for msg in call:
                yield from_chunk(msg)
        except grpc.aio.AioRpcError as exc:
            raise await self._failure(exc.code(), exc.details() or "", _error_code(exc)) from exc
        finally:
            call.cancel()  # no-op when finished; aborts the worker's sequence when we leave early

    async def _session_stream(self, request: pb.GenerateRequest, metadata: Mapping[str, str]
                              ) -> AsyncGenerator[Chunk, None]:
        if self._session is None or self._session.lost is not None:  # no await here: one replacement
            self._session = WorkerSession(self.stub)
        session = self._session
        tag, events = session.open(request, metadata)
        ended = False
        try:
            while True:
                item = await events.get()
                if isinstance(item, SessionLost):
                    ended = True
                    if item.code == grpc.StatusCode.UNIMPLEMENTED and self.info is not None:
                        # Replaced at this address by a worker from before Session: a call per stream
                        # from now on, and this job, which got nothing yet, goes again.
                        self.info = dataclasses.replace(self.info, has_session=False)
                        raise WorkerUnavailable(f"worker {self.address}: no Session method")
                    raise await self._failure(item.code, item.details, None)
                if item.HasField("chunk"):
                    yield from_chunk(item.chunk)
                if item.last:
                    ended = True
                    if item.status_code != grpc.StatusCode.OK.value[0]:
                        code = _STATUS_BY_VALUE.get(item.status_code, grpc.StatusCode.UNKNOWN)
                        raise await self._failure(code, item.status_message, item.error_code or None)
                    return
        finally:
            session.close(tag, cancel=not ended)  # leaving early aborts the worker's sequence

    async def _failure(self, code: grpc.StatusCode, details: str, error_code: str | None) -> Exception:
        """What a stream that ended with this status raises: the worker's failure or the request's."""
        if code in _WORKER_DOWN or (code in _ASK_HEALTH and not await self.refresh(PROBE_TIMEOUT_S)):
            return WorkerUnavailable(f"worker {self.address}: {code.name}: {details}",
                                     engine_failed=code in _ASK_HEALTH)
        return WorkerRejected(code, details or code.name, error_code)

    async def refresh(self, timeout: float = 1.0) -> bool:
        """Health check plus load report; updates is_healthy and load."""
        try:
            resp = await self.health_stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            serving = resp.status == health_pb2.HealthCheckResponse.SERVING
            if serving:
                if self.info is None:
                    i = await self.stub.Info(pb.InfoRequest(), timeout=timeout)
                    self.info = ModelInfo(i.model, i.max_model_len, i.block_size, i.vocab_size, i.worker_id,
                                          i.has_session)
                self.load = from_load(await self.stub.Load(pb.LoadRequest(), timeout=timeout))
            self.is_healthy = serving and not self.load.is_draining
        except grpc.aio.AioRpcError:
            self.is_healthy = False
        return self.is_healthy

    async def close(self) -> None:
        if self._session is not None:
            await self._session.aclose()
        await self.channel.close()
