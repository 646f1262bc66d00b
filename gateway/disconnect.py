"""Watching for the HTTP client going away: one watcher per request, no task per phase.

Once the body is read, the next ASGI `receive()` only returns when the client disconnects.
A `DisconnectGuard` awaits it in one task for the whole request and, while it is armed,
cancels the request's own task when it comes:
- armed while the request waits for its first chunk, a request waiting in a lane queue
  (before any response byte) is removed from its queue and never reaches a worker;
- armed while a response streams, the stream stops and its gRPC call is cancelled, so the
  worker frees the sequence's KV at once.

Why not a task per phase (asyncio.wait on two tasks, then Starlette's StreamingResponse,
which runs the body and a disconnect listener in an anyio task group): on a machine whose
cores the model keeps busy, every task, cancel scope and wake-up on a request's way to its
first token runs from cold caches. The handler and its response run on one task (Starlette's
`request_response`), so one watcher can guard both.

The watcher cancels only while armed, checked when its callback runs: callbacks run only
while the request's task is suspended, so a guard disarmed right after an armed await
returns is never cancelled outside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Mapping
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClientGone(Exception):
    pass


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class DisconnectGuard:
    """Watches one request's client; `run` and `SSEResponse` turn its leaving into ClientGone
    or a quiet end. Create it on the request's task; `close` it when the request is done."""

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("DisconnectGuard needs a running task")
        self._task = task
        self._armed = False
        self.client_gone = False
        self._watcher = asyncio.ensure_future(_wait_disconnect(receive))
        self._watcher.add_done_callback(self._on_watcher_done)

    def _on_watcher_done(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        self.client_gone = True
        if self._armed:
            self._task.cancel()

    async def run(self, work: Awaitable[T]) -> T:
        """Await `work`; raises ClientGone instead if the client leaves first (or had left)."""
        if self.client_gone:
            close = getattr(work, "close", None)
            if close is not None:
                close()  # never awaited: a coroutine is closed, not left to warn
            raise ClientGone()
        self._armed = True
        try:
            return await work
        except asyncio.CancelledError:
            if self._absorb():
                raise ClientGone() from None
            raise
        finally:
            self._armed = False

    def _absorb(self) -> bool:
        """In an `except CancelledError`: True when the cancel was ours (the client left)."""
        if self.client_gone:
            self._task.uncancel()
            return True
        return False

    def close(self) -> None:
        self._armed = False
        self._watcher.remove_done_callback(self._on_watcher_done)
        self._watcher.cancel()


class SSEResponse(Response):
    """A `text/event-stream` body, streamed under the request's DisconnectGuard: a client that
    leaves ends the stream quietly (the body generator is closed, which cancels its gRPC call)."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncGenerator[str, None], guard: DisconnectGuard,
                 headers: Mapping[str, str] | None = None) -> None:
        self.body_iterator = body
        self.guard = guard
        self.status_code = 200
        self.background = None  # nothing runs after the stream
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.guard
        try:
            await guard.run(self._stream(send))
        except ClientGone:
            pass
        finally:
            guard.close()
            await self.body_iterator.aclose()  # a cancelled stream may not have reached its generator's finally

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for event in self.body_iterator:
            await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
