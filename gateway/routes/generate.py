"""POST completions and chat completions, for endpoint URLs and the plain /v1 paths."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway import openai_format as fmt
from gateway.completion import collect_body, no_output
from gateway.disconnect import ClientGone, DisconnectGuard, SSEResponse
from gateway.errors import APIError
from gateway.intake import build_job
from gateway.job import Chunk, Job, JobKind
from gateway.model_catalog import ModelCatalog
from gateway.service import StreamBroken
from gateway.state import GatewayState
from gateway.tools.stream import ToolStream

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # nginx's code for "client closed request"; never seen by the client


async def completions(request: Request) -> Response:
    return await _generate(request, "completion")


async def chat_completions(request: Request) -> Response:
    return await _generate(request, "chat")


async def _generate(request: Request, kind: JobKind) -> Response:
    state: GatewayState = request.app.state.laneway
    policy = state.policy_store.policy  # one policy for the whole intake, even across a reload
    job = await build_job(request, kind, policy, state.catalog)
    # Tenant rate limits first (429 / 503 here); their x-ratelimit-* headers go on every
    # response to a limited tenant, refusals included. meter() settles the reserved tokens.
    reservation = await state.limiter.admit(job, policy)
    try:
        response = await _respond(request, state.catalog, job, reservation.meter(state.service.stream(job)))
    except APIError as exc:
        exc.headers.update(reservation.headers)
        raise
    response.headers.update(reservation.headers)
    return response


async def _respond(request: Request, catalog: ModelCatalog, job: Job,
                   chunks: AsyncGenerator[Chunk, None]) -> Response:
    guard = DisconnectGuard(request.receive)  # one watcher for the whole request
    handed_over = False  # a streamed response closes the guard once its stream ends
    try:
        # Wait for the first chunk before answering, so refusals (429) and bad input found by
        # the worker (400) are real HTTP statuses, not events inside a 200 stream.
        first = await guard.run(anext(chunks))
        model = catalog.model_name
        if job.stream:
            response = SSEResponse(_sse(job, model, first, chunks), guard,
                                   headers={"Cache-Control": "no-cache", **_lane_headers(job)})
            handed_over = True
            return response
        return await guard.run(_collect(job, model, first, chunks))
    except ClientGone:
        await chunks.aclose()
        return Response(status_code=CLIENT_CLOSED)
    except StopAsyncIteration:
        raise no_output() from None
    finally:
        if not handed_over:
            guard.close()


async def _collect(job: Job, model: str, first: Chunk, chunks: AsyncIterator[Chunk]) -> JSONResponse:
    body = await collect_body(job, model, first, chunks)
    return JSONResponse(body, headers=_lane_headers(job))


def _lane_headers(job: Job) -> dict[str, str]:
    """Where the request went and how long it queued there (for clients' own latency reviews)."""
    headers = {"x-laneway-lane": job.lane.name, "x-laneway-endpoint": job.endpoint}
    if job.queue_wait_s is not None:
        headers["x-laneway-queue-wait-ms"] = f"{job.queue_wait_s * 1000.0:.1f}"
    return headers


async def _sse(job: Job, model: str, first: Chunk, chunks: AsyncGenerator[Chunk, None]) -> AsyncGenerator[str, None]:
    last = first
    choices: dict[int, fmt.ChoiceState] = {}
    tool_streams: dict[int, ToolStream] = {}  # per choice: each has its own calls to parse

    def event(c: Chunk) -> str | None:
        if job.uses_tools:
            return tool_streams.setdefault(c.index, ToolStream(job, c.index)).event(model, c)
        return fmt.stream_event(job, model, choices.setdefault(c.index, fmt.ChoiceState(c.index)), c)

    try:
        if (e := event(first)) is not None:
            yield e
        async for c in chunks:
            last = c
            if (e := event(c)) is not None:
                yield e
        if job.stream_usage:
            yield fmt.usage_event(job, model, last)
        yield fmt.DONE
    except StreamBroken as exc:
        yield fmt.error_event(f"the worker serving this request failed: {exc}", exc.code)
        yield fmt.DONE
    finally:
        await chunks.aclose()  # client gone mid-stream: cancels the gRPC call, worker frees KV
