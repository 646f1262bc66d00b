"""Runs one job: lane admission and batch window, worker placement, the output stream.

A job that has not produced a token yet is retried on another worker when its worker
fails (not-yet-started work is never lost); a stream that breaks mid-way ends with an
error, never a hang.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Protocol

import grpc

from gateway.errors import APIError, unavailable
from gateway.job import Chunk, Job
from gateway.telemetry import GatewayTelemetry
from gateway.worker_client import WorkerClient, WorkerRejected, WorkerUnavailable
from gateway.worker_pool import WorkerPool

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


class StreamBroken(Exception):
    """The worker died after tokens were already sent to the client."""


class Dispatcher(Protocol):
    async def acquire(self, job: Job) -> WorkerClient | None:
        """Wait for the job's turn (lane queue, batch window); refuse with APIError(429) when
        its budget cannot be met. Returns the worker chosen for its batch, or None."""
        ...

    def release(self, job: Job, *, completed: bool) -> None:
        """The job left the worker (finished, failed or cancelled)."""
        ...

    def observe(self, job: Job, ttft_s: float) -> None:
        """The job's first token arrived ttft_s after it was received (queue wait included)."""
        ...

    async def close(self) -> None:
        """Refuse what is still queued; stop background tasks."""
        ...


class ImmediateDispatcher:
    """No lanes: every job leaves at once to the best worker (the product-blind baseline)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    async def acquire(self, job: Job) -> WorkerClient | None:
        return self.pool.pick(job)

    def release(self, job: Job, *, completed: bool) -> None:
        pass

    def observe(self, job: Job, ttft_s: float) -> None:
        pass

    async def close(self) -> None:
        pass


class GenerationService:
    def __init__(self, pool: WorkerPool, dispatcher: Dispatcher, telemetry: GatewayTelemetry | None = None) -> None:
        self.pool = pool
        self.dispatcher = dispatcher
        self.telemetry = telemetry if telemetry is not None else GatewayTelemetry.disabled()

    async def stream(self, job: Job) -> AsyncGenerator[Chunk, None]:
        trace = self.telemetry.generation(job)  # the HTTP request's trace, or its own (Batch API items)
        try:
            with trace.lane_queue(job):
                worker = await self.dispatcher.acquire(job)
            completed = False
            try:
                tried: list[WorkerClient] = []
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    worker = worker or self.pool.pick(job, exclude=tried)
                    if worker is None:
                        break
                    started = False
                    try:
                        with trace.dispatch(job, worker.address, attempt):
                            async for chunk in worker.generate(job):
                                if not started:
                                    started = True
                                    self.dispatcher.observe(job, time.time() - job.created)
                                job.num_output_tokens += len(chunk.token_ids)
                                trace.chunk(chunk)
                                yield chunk
                        completed = True
                        return
                    except WorkerUnavailable as exc:
                        self.pool.mark_down(worker)
                        if started:
                            raise StreamBroken(str(exc)) from exc
                        log.warning("%s: %s; retrying on another worker", job.request_id, exc)
                        tried.append(worker)
                        worker = None
                    except WorkerRejected as exc:
                        raise _rejected(exc) from exc
                raise unavailable("no healthy worker can serve this request right now", retry_after_s=2)
            finally:
                self.dispatcher.release(job, completed=completed)
        except BaseException as exc:
            trace.failed(exc)
            raise
        finally:
            trace.generation_done()


def _rejected(exc: WorkerRejected) -> APIError:
    if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
        return APIError(400, exc.message, code="invalid_request")
    if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return APIError(429, exc.message, type="rate_limit_error", code="worker-full",
                        headers={"Retry-After": "1", "x-laneway-reject-reason": "worker-full"})
    return APIError(502, f"worker error: {exc.message}", type="server_error", code="worker_error")
