"""One watcher per request (gateway/disconnect.py): a client leaving cancels what it guards, and
only that; a streamed response ends quietly and closes its body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from gateway.disconnect import ClientGone, DisconnectGuard, SSEResponse


class Client:
    """An ASGI receive that returns http.disconnect once `leave()` is called."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    def leave(self) -> None:
        self.gone.set()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}


def test_guarded_work_returns_its_result_while_the_client_stays() -> None:
    async def main() -> None:
        client = Client()
        guard = DisconnectGuard(client.receive)
        assert await guard.run(asyncio.sleep(0.01, result="first chunk")) == "first chunk"
        guard.close()
        client.leave()
        await asyncio.sleep(0.01)  # a closed guard cancels nothing
        assert not guard.client_gone

    asyncio.run(main())


def test_a_client_leaving_cancels_the_guarded_work_and_raises_client_gone() -> None:
    async def main() -> None:
        client = Client()
        guard = DisconnectGuard(client.receive)
        cleaned_up = asyncio.Event()

        async def queued() -> None:
            try:
                await asyncio.sleep(60)
            finally:
                cleaned_up.set()  # e.g. removed from its lane queue

        asyncio.get_running_loop().call_later(0.01, client.leave)
        with pytest.raises(ClientGone):
            await guard.run(queued())
        assert cleaned_up.is_set() and guard.client_gone
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0, "the cancel was absorbed"
        await asyncio.sleep(0)  # the request's task carries on normally
        guard.close()

    asyncio.run(main())


def test_a_client_that_left_while_unguarded_is_found_at_the_next_guarded_await() -> None:
    async def main() -> None:
        client = Client()
        guard = DisconnectGuard(client.receive)
        client.leave()
        await asyncio.sleep(0.01)  # not armed: nothing is cancelled
        with pytest.raises(ClientGone):
            await guard.run(asyncio.sleep(0))
        guard.close()

    asyncio.run(main())


def test_an_sse_response_streams_its_events_and_ends_the_body() -> None:
    async def events() -> AsyncIterator[str]:
        yield "data: 1\n\n"
        yield "data: 2\n\n"

    async def main() -> list[Message]:
        client = Client()
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        response = SSEResponse(events(), DisconnectGuard(client.receive), headers={"x-laneway-lane": "streaming"})
        await response({"type": "http"}, client.receive, send)
        return sent

    sent = asyncio.run(main())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"x-laneway-lane"] == b"streaming"
    assert [m["body"] for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert sent[-1]["more_body"] is False


def test_a_client_leaving_mid_stream_stops_it_quietly_and_closes_the_body() -> None:
    closed = []

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                await asyncio.sleep(0.005)
                yield "data: token\n\n"
        finally:
            closed.append(True)  # e.g. the gRPC call is cancelled: the worker frees the KV

    async def main() -> list[Message]:
        client = Client()
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)
            if len(sent) == 4:
                client.leave()

        response = SSEResponse(endless(), DisconnectGuard(client.receive))
        await response({"type": "http"}, client.receive, send)  # on the guard's task, as Starlette runs it
        return sent

    sent = asyncio.run(main())
    assert closed == [True]
    assert 4 <= len(sent) <= 5 and all(m.get("more_body", True) for m in sent), "no end of body for a gone client"
