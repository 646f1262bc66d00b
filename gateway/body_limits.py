"""Request bodies bounded in size and in time, before any handler buffers them.

Without this a handler's `await request.body()` holds whatever a client sends (a 10 GB
prompt) and waits as long as a client pauses (headers, then nothing). Here:
- a Content-Length over the limit is answered 413 without reading a byte;
- a body that grows past the limit while streaming in (chunked) is cut with 413;
- a body that stalls longer than `idle_timeout_s` between two reads is cut with 408.
Uploads to the Batch API's /files routes get the file limit instead (OpenAI's 200 MB).
Both refusals close the connection: the unread rest of the body must not be parsed as
the next request.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import APIError

MULTIPART_SLACK_BYTES = 1 << 20  # form boundaries and headers around an uploaded file


def too_large(limit: int) -> APIError:
    return APIError(413, f"request body is larger than this gateway accepts ({limit} bytes)",
                    code="request_too_large", headers={"Connection": "close"})


def too_slow(idle_timeout_s: float) -> APIError:
    return APIError(408, f"request body stalled for more than {idle_timeout_s:g}s", code="request_timeout",
                    headers={"Connection": "close"})


class BodyLimits:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int, idle_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes + MULTIPART_SLACK_BYTES
        self.idle_timeout_s = idle_timeout_s

    def limit_for(self, scope: Scope) -> int:
        return self.max_upload_bytes if scope["path"].endswith("/files") else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await too_large(limit).response()(scope, receive, send)
            return
        num_received = 0
        is_body_done = False

        async def bounded_receive() -> Message:
            nonlocal num_received, is_body_done
            if is_body_done:
                return await receive()  # disconnect watching: waits as long as the response runs
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise too_slow(self.idle_timeout_s) from None
            if message["type"] == "http.request":
                num_received += len(message.get("body", b""))
                if num_received > limit:
                    raise too_large(limit)
                is_body_done = not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser already refuses a malformed length with 400
    return None
