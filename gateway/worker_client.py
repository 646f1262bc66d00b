"""One gRPC client per worker: generate stream, load, health.

A failed call is either the worker's (it is down, draining or its engine died: take it out
of rotation and move the job) or the request's (bad input, a full queue, or an error only
this request met: tell the client, keep the worker). The status says which, except for
INTERNAL and UNKNOWN, which either can raise; for those the worker's health decides, read
at once. A worker whose engine fails reports NOT_SERVING before any stream hears of it
(workers/main.py), so one bad request never takes a healthy worker out of rotation, and
never empties the pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.job import Chunk, Job, WorkerLoad
from gateway.wire import from_chunk, from_load, to_request
from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc

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

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The worker could not serve at all: unreachable, draining, shutting down mid-call.
_WORKER_DOWN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
# The request's failure or the worker's: its health, checked now, decides.
_ASK_HEALTH = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
PROBE_TIMEOUT_S = 0.5


@dataclass
class ModelInfo:
    model: str
    max_model_len: int
    block_size: int
    vocab_size: int
    worker_id: str


class WorkerClient:
    def __init__(self, address: str) -> None:
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
        self.num_inflight = 0  # calls this gateway has open on the worker

    async def generate(self, job: Job, resume_token_ids: Sequence[int] = ()) -> AsyncGenerator[Chunk, None]:
        """Stream chunks (after `resume_token_ids`, when resuming another worker's stream).
        Raises WorkerUnavailable (the worker is down: move the job elsewhere) or WorkerRejected
        (the worker said no, or failed this request alone, for a reason the client must hear)."""
        call = self.stub.Generate(to_request(job, resume_token_ids), metadata=tuple(job.trace_headers.items()))
        self.num_inflight += 1
        try:
            async for msg in call:
                yield from_chunk(msg)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in _WORKER_DOWN or (code in _ASK_HEALTH and not await self.refresh(PROBE_TIMEOUT_S)):
                raise WorkerUnavailable(f"worker {self.address}: {code.name}: {exc.details()}",
                                        engine_failed=code in _ASK_HEALTH) from exc
            raise WorkerRejected(code, exc.details() or code.name) from exc
        finally:
            self.num_inflight -= 1
            call.cancel()  # no-op when finished; aborts the worker's sequence when we leave early

    async def refresh(self, timeout: float = 1.0) -> bool:
        """Health check plus load report; updates is_healthy and load."""
        try:
            resp = await self.health_stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            serving = resp.status == health_pb2.HealthCheckResponse.SERVING
            if serving:
                if self.info is None:
                    i = await self.stub.Info(pb.InfoRequest(), timeout=timeout)
                    self.info = ModelInfo(i.model, i.max_model_len, i.block_size, i.vocab_size, i.worker_id)
                self.load = from_load(await self.stub.Load(pb.LoadRequest(), timeout=timeout))
            self.is_healthy = serving and not self.load.is_draining
        except grpc.aio.AioRpcError:
            self.is_healthy = False
        return self.is_healthy

    async def close(self) -> None:
        await self.channel.close()
