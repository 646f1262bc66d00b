"""Replay a trace open-loop against a server and collect per-request results."""

from __future__ import annotations

import asyncio
import time

import httpx

from laneway.load.client import RequestResult, stream_request
from laneway.load.trace import Arrival


async def replay(base_url: str, trace: list[Arrival], *, kind: str = "completions", drain_timeout_s: float = 120.0,
                 api_key: str | None = None, max_connections: int = 2000) -> tuple[list[RequestResult], float]:
    """Fire each arrival at its time (never waiting for earlier ones); returns results and the
    wall time from the first send to the last response (or the drain timeout)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    async with httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0), limits=limits) as client:
        t0 = time.perf_counter()
        tasks: list[asyncio.Task[RequestResult]] = []
        for a in trace:
            delay = a.at_s - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            url = f"{base_url}/v1/endpoints/{a.endpoint}/{kind}"
            body = {"prompt": a.prompt, "max_tokens": a.max_tokens, "ignore_eos": True, "temperature": 0}
            tasks.append(asyncio.create_task(stream_request(client, url, body, a.endpoint, a.at_s, t0, headers)))
        done, pending = await asyncio.wait(tasks, timeout=drain_timeout_s) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - t0
    results = []
    for a, t in zip(trace, tasks):
        if t in done:
            results.append(t.result())
        else:
            results.append(RequestResult(endpoint=a.endpoint, scheduled_at=a.at_s, sent_at=a.at_s,
                                         error="not finished before the drain timeout"))
    return results, elapsed
