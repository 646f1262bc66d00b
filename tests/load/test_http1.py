"""The lean HTTP/1.1 client: body framings, keep-alive reuse, a stale connection, errors."""

from __future__ import annotations

import asyncio

import pytest

from laneway.load.http1 import Http1Pool, HttpError

CHUNKED = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n")
SIZED = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\nX-Laneway-Reject-Reason: full\r\n\r\nbusy"
UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\n\r\nuntil close"


async def serve(responses: list[bytes], close_after_each: bool = False):
    """A server answering each request, in order, with the next scripted response."""
    connections = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while responses:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = int(next(line.split(b":")[1] for line in lines if line.startswith(b"content-length")))
            await reader.readexactly(length)
            resp = responses.pop(0)
            writer.write(resp)
            await writer.drain()
            if close_after_each or resp is UNTIL_CLOSE:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


def test_framings_and_keep_alive() -> None:
    async def main() -> None:
        server, port, conns = await serve([CHUNKED, SIZED, UNTIL_CLOSE])
        async with server, Http1Pool(f"http://127.0.0.1:{port}") as pool:
            r = await pool.post("/a", b"{}")
            assert r.status == 200 and await r.read() == b"hello, world"
            r = await pool.post("/b", b"{}")
            assert r.status == 429 and r.headers["x-laneway-reject-reason"] == "full" and await r.read() == b"busy"
            r = await pool.post("/c", b"{}")
            assert await r.read() == b"until close"
            assert len(conns) == 1  # all three on one kept-alive connection

    asyncio.run(main())


def test_connections_closed_by_the_server_are_replaced() -> None:
    async def main() -> None:
        server, port, conns = await serve([SIZED, SIZED, SIZED], close_after_each=True)
        async with server, Http1Pool(f"http://127.0.0.1:{port}") as pool:

            async def one() -> bytes:
                return await (await pool.post("/a", b"{}")).read()

            assert await asyncio.gather(one(), one()) == [b"busy", b"busy"]  # two kept-alive connections
            await asyncio.sleep(0.05)  # the server has closed both ends by now
            assert await one() == b"busy"  # both stale ones skipped, a fresh one used
            assert len(conns) == 3

    asyncio.run(main())


def test_connection_refused_is_an_http_error() -> None:
    from laneway.procs import free_port

    async def main() -> None:
        async with Http1Pool(f"http://127.0.0.1:{free_port()}") as pool:
            with pytest.raises(HttpError, match="cannot connect"):
                await pool.post("/a", b"{}")

    asyncio.run(main())


def test_base_url_is_checked() -> None:
    with pytest.raises(ValueError, match="base URL"):
        Http1Pool("127.0.0.1:8000")
    assert Http1Pool("https://example.com/api/").port == 443
