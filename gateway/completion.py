"""A whole non-streaming answer from a job's chunks: the HTTP route's JSON body, and the Batch
API's line answers (which run jobs without any HTTP request)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway import openai_format as fmt
from gateway.errors import APIError
from gateway.job import Chunk, Job
from gateway.model_catalog import ModelCatalog
from gateway.service import GenerationService, StreamBroken
from gateway.tools.output import rewrite_message


def no_output() -> APIError:
    return APIError(502, "worker closed the stream without output", type="server_error")


async def collect_body(job: Job, model: str, first: Chunk, chunks: AsyncIterator[Chunk]) -> dict:
    """The rest of the stream after its first chunk, as one OpenAI response body (every choice)."""
    choices = {index: fmt.ChoiceState(index) for index in range(job.num_choices)}
    last = first
    fmt.advance(job, choices.setdefault(first.index, fmt.ChoiceState(first.index)), first)
    try:
        async for c in chunks:
            fmt.advance(job, choices.setdefault(c.index, fmt.ChoiceState(c.index)), c)
            last = c
    except StreamBroken as exc:
        raise APIError(502, f"the worker serving this request failed: {exc}", type="server_error",
                       code=exc.code) from exc
    body = fmt.full_body(job, model, list(choices.values()), last)
    if job.tools is not None and job.uses_tools:
        for choice in body["choices"]:
            rewrite_message(job.tools, choice)
    return body


async def complete(service: GenerationService, catalog: ModelCatalog, job: Job) -> dict:
    """Run a job to completion without HTTP; raises APIError like a route would."""
    chunks = service.stream(job)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        raise no_output() from None
    try:
        return await collect_body(job, catalog.model_name, first, chunks)
    finally:
        await chunks.aclose()
