"""Drive one HTTP request through an ASGI app by hand: for clients that leave early."""

from __future__ import annotations

import asyncio
import json

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message


async def post_and_leave(app: ASGIApp, path: str, body: dict, leave_after_body_chunks: int | None) -> list[Message]:
    """POST `body`; the client disconnects at once (None) or after that many response body chunks.

    With ASGI 2.4 semantics, a send after the disconnect raises OSError, as uvicorn's does."""
    sent: list[Message] = []
    payload = json.dumps(body).encode()
    delivered = False
    gone = asyncio.Event()
    if leave_after_body_chunks is None:
        gone.set()

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if gone.is_set() and message["type"] == "http.response.body":
            raise OSError("client went away")
        sent.append(message)
        chunks = sum(1 for m in sent if m["type"] == "http.response.body")
        if leave_after_body_chunks is not None and chunks >= leave_after_body_chunks:
            gone.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
             "client": ("127.0.0.1", 1234), "server": ("test", 80)}
    try:
        await app(scope, receive, send)
    except (OSError, ClientDisconnect):
        pass  # the client is gone; a server drops what the app raises about it
    return sent
