"""One request, timed from the client's side: TTFT, gaps between tokens, outcome.

Two transports, one result type: httpx (`stream_request`, `send_request`; used by
`laneway bench lanes`) and the lean HTTP/1.1 pool (`send_request_fast`; `laneway load`).

Open loop: the caller fires each request at its scheduled time whatever the server is
doing, so a slow server shows up as latency and refusals, not as a slower generator.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx

from laneway.load.http1 import Http1Pool, HttpError


@dataclass
class RequestResult:
    endpoint: str
    scheduled_at: float  # seconds since the run started
    sent_at: float
    status: int = 0  # HTTP status; 0 when the connection failed
    reject_reason: str | None = None
    ttft_s: float | None = None
    token_times: list[float] = field(default_factory=list)  # arrival time of each content chunk
    finished_at: float | None = None
    output_tokens: int = 0
    finish_reason: str | None = None
    queue_wait_ms: float | None = None  # the gateway's x-laneway-queue-wait-ms, when present
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.finish_reason is not None

    @property
    def tbt_s(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:])]

    @property
    def e2e_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.sent_at


async def stream_request(client: httpx.AsyncClient, url: str, body: dict, endpoint: str, scheduled_at: float,
                         t0: float, headers: dict[str, str] | None = None) -> RequestResult:
    sent = time.perf_counter()
    res = RequestResult(endpoint=endpoint, scheduled_at=scheduled_at, sent_at=sent - t0)
    try:
        async with client.stream("POST", url, json={**body, "stream": True,
                                                    "stream_options": {"include_usage": True}},
                                 headers=headers) as r:
            res.status = r.status_code
            if r.status_code != 200:
                await r.aread()
                res.reject_reason = r.headers.get("x-laneway-reject-reason")
                res.error = _error_message(r.text)
                res.finished_at = time.perf_counter() - t0
                return res
            if "x-laneway-queue-wait-ms" in r.headers:
                res.queue_wait_ms = float(r.headers["x-laneway-queue-wait-ms"])
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                _absorb(res, json.loads(line[6:]), time.perf_counter() - sent)
    except httpx.HTTPError as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.finished_at = time.perf_counter() - t0
    return res


def _absorb(res: RequestResult, event: dict, since_sent: float) -> None:
    if "error" in event:
        res.error = event["error"].get("message", "stream error")
        return
    if event.get("usage"):
        res.output_tokens = event["usage"]["completion_tokens"]
    for choice in event.get("choices", []):
        text = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
        if text is not None:
            if res.ttft_s is None:
                res.ttft_s = since_sent
            res.token_times.append(since_sent)
        if choice.get("finish_reason"):
            res.finish_reason = choice["finish_reason"]


def _error_message(text: str) -> str:
    try:
        return json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text[:200]


async def send_request(client: httpx.AsyncClient, url: str, body: dict, endpoint: str, scheduled_at: float,
                       t0: float, headers: dict[str, str] | None = None, stream: bool = True) -> RequestResult:
    """Streamed (TTFT and TBT seen) or not (only end-to-end and usage seen)."""
    if stream:
        return await stream_request(client, url, body, endpoint, scheduled_at, t0, headers)
    sent = time.perf_counter()
    res = RequestResult(endpoint=endpoint, scheduled_at=scheduled_at, sent_at=sent - t0)
    try:
        r = await client.post(url, json={**body, "stream": False}, headers=headers)
        res.status = r.status_code
        if r.status_code != 200:
            res.reject_reason = r.headers.get("x-laneway-reject-reason")
            res.error = _error_message(r.text)
        else:
            if "x-laneway-queue-wait-ms" in r.headers:
                res.queue_wait_ms = float(r.headers["x-laneway-queue-wait-ms"])
            data = r.json()
            res.output_tokens = (data.get("usage") or {}).get("completion_tokens", 0)
            choices = data.get("choices") or [{}]
            res.finish_reason = choices[0].get("finish_reason")
    except (httpx.HTTPError, ValueError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.finished_at = time.perf_counter() - t0
    return res


async def send_request_fast(pool: Http1Pool, path: str, body: dict, endpoint: str, scheduled_at: float, t0: float,
                            headers: dict[str, str] | None = None, stream: bool = True) -> RequestResult:
    """`send_request` on the lean HTTP/1.1 pool (http1.py): the same result, less CPU per request."""
    sent = time.perf_counter()
    res = RequestResult(endpoint=endpoint, scheduled_at=scheduled_at, sent_at=sent - t0)
    if stream:
        payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
    else:
        payload = {**body, "stream": False}
    try:
        r = await pool.post(path, json.dumps(payload).encode(), headers)
        res.status = r.status
        if r.status != 200:
            res.reject_reason = r.headers.get("x-laneway-reject-reason")
            res.error = _error_message((await r.read()).decode(errors="replace"))
        elif not stream:
            if "x-laneway-queue-wait-ms" in r.headers:
                res.queue_wait_ms = float(r.headers["x-laneway-queue-wait-ms"])
            data = json.loads(await r.read())
            res.output_tokens = (data.get("usage") or {}).get("completion_tokens", 0)
            res.finish_reason = (data.get("choices") or [{}])[0].get("finish_reason")
        else:
            if "x-laneway-queue-wait-ms" in r.headers:
                res.queue_wait_ms = float(r.headers["x-laneway-queue-wait-ms"])
            pending = b""
            async for chunk in r.chunks():
                at = time.perf_counter() - sent
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                        _absorb(res, json.loads(line[6:]), at)
    except (HttpError, ValueError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.finished_at = time.perf_counter() - t0
    return res
