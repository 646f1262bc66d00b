"""Runs one job: lane admission and batch window, worker placement, the output stream.

When its worker goes down (killed, draining, engine failed) a job moves on:
- before its first token, to another worker at once (not-yet-started work is never lost),
  or a 503 with Retry-After when there is none;
- mid-stream, to another worker that resumes it from the prompt plus the tokens already
  sent (GenerateRequest.resume_token_ids): the client's stream goes on without a seam, and
  greedy and seeded requests get exactly the tokens the first worker would have sent.
  With no worker to take it within FAILOVER_WAIT_S the stream ends with an error
  (StreamBroken), never a hang.
A job tries at most MAX_ATTEMPTS workers in all. A worker that fails one request but stays
healthy (gateway/worker_client.py) keeps its place; the request gets the error. A job under
which MAX_ENGINE_FAILURES workers' engines failed is their likely cause: it moves no further
(a poison request takes down at most that many workers, and they restart), while the
bystanders of a single engine failure are moved like those of a killed worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import Protocol

import grpc

from gateway.errors import APIError, unavailable
from gateway.job import Chunk, Job
from gateway.telemetry import GatewayTelemetry, RequestTrace
from gateway.worker_client import WorkerClient, WorkerRejected, WorkerUnavailable
from gateway.worker_pool import WorkerPool

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
MAX_ENGINE_FAILURES = 2
FAILOVER_WAIT_S = 10.0  # a broken stream waits this long for a worker to resume it (one restarting)
FAILOVER_POLL_S = 0.1


class StreamBroken(Exception):
    """The stream failed after tokens were already sent to the client, and could not resume.

    `code`: "worker_lost" (its workers went away: the same request may well succeed later) or
    "worker_error" (the request itself is the likely cause: retrying it is no use)."""

    def __init__(self, message: str, code: str = "worker_lost") -> None:
        super().__init__(message)
        self.code = code


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
                async with contextlib.aclosing(self._attempts(job, worker, trace)) as chunks:
                    async for chunk in chunks:  # a client gone closes this at once: the worker aborts
                        job.num_output_tokens += len(chunk.token_ids)  # fair share: tokens served
                        yield chunk
                completed = True
            finally:
                self.dispatcher.release(job, completed=completed)
        except BaseException as exc:
            trace.failed(exc)
            raise
        finally:
            trace.generation_done()

    async def _attempts(self, job: Job, worker: WorkerClient | None, trace: RequestTrace
                        ) -> AsyncGenerator[Chunk, None]:
        sent: list[int] = []  # token ids passed on to the client: what a resuming worker continues after
        started = False
        tried: list[WorkerClient] = []
        failure: WorkerUnavailable | None = None
        num_engine_failures = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if worker is None:
                worker = await self._worker_to_resume(job) if started else self.pool.pick(job, exclude=tried)
            if worker is None:
                break
            try:
                with trace.dispatch(job, worker.address, attempt):
                    async with contextlib.aclosing(worker.generate(job, resume_token_ids=tuple(sent))) as stream:
                        async for chunk in stream:
                            if not started:
                                started = True
                                self.dispatcher.observe(job, time.time() - job.created)
                            sent.extend(chunk.token_ids)
                            trace.chunk(chunk)
                            yield chunk
                return
            except WorkerUnavailable as exc:
                self.pool.mark_down(worker)
                tried.append(worker)
                worker, failure = None, exc
                num_engine_failures += exc.engine_failed
                if num_engine_failures >= MAX_ENGINE_FAILURES:
                    message = (f"{exc}; the engines of {num_engine_failures} workers failed while serving this "
                               "request, so it is not tried again")
                    log.error("%s: %s", job.request_id, message)
                    if started:
                        raise StreamBroken(message, code="worker_error") from exc
                    raise APIError(502, message, type="server_error", code="worker_error") from exc
                if started:
                    log.warning("%s: %s after %d tokens; resuming on another worker", job.request_id, exc, len(sent))
                else:
                    log.warning("%s: %s; retrying on another worker", job.request_id, exc)
            except WorkerRejected as exc:
                if started:  # e.g. the resuming worker refused the resume: the stream cannot go on
                    raise StreamBroken(f"worker {worker.address}: {exc.message}", code="worker_error") from exc
                raise _rejected(exc) from exc
        if started:
            raise StreamBroken(f"{failure}; no worker could resume the stream") from failure
        raise unavailable("no healthy worker can serve this request right now", retry_after_s=2)

    async def _worker_to_resume(self, job: Job) -> WorkerClient | None:
        """Any healthy worker, waiting up to FAILOVER_WAIT_S for one (the supervisor may be
        restarting the only one). The pool's refresh marks workers healthy again; polling
        leaves `pool.changed` to the lane dispatcher, its one reader."""
        deadline = time.monotonic() + FAILOVER_WAIT_S
        while (worker := self.pool.pick(job)) is None and time.monotonic() < deadline:
            await asyncio.sleep(FAILOVER_POLL_S)
        return worker


def _rejected(exc: WorkerRejected) -> APIError:
    if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
        return APIError(400, exc.message, code="invalid_request")
    if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return APIError(429, exc.message, type="rate_limit_error", code="worker-full",
                        headers={"Retry-After": "1", "x-laneway-reject-reason": "worker-full"})
    return APIError(502, f"worker error: {exc.message}", type="server_error", code="worker_error")
