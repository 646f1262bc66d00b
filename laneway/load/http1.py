"""A lean HTTP/1.1 client for the load generator's hot path, on asyncio streams.

Why not httpx here: its connection pool scans every connection on every request event,
so at a few hundred requests per second with dozens in flight the generator spent more
CPU per request than the server it measured (3-8 ms vs ~1.5 ms, profiled), and its own
lag showed up as server latency. This client does one thing: POST a JSON body over a
keep-alive connection (one request per connection at a time, idle ones reused) and hand
back the response body as it arrives, de-chunked. http and https; no redirects, no
proxies, no HTTP/2 - point it at the server, not at something in between.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_IDLE_S = 4.0


class HttpError(Exception):
    """The connection failed or the response was not HTTP/1.1 we understand."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    _conn: _Connection
    _pool: Http1Pool
    _done: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked, sized, or until the server closes)."""
        reader = self._conn.reader
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")  # trailers are not used by these servers
                        break
                    data = await reader.readexactly(size + 2)
                    yield data[:-2]
            elif "content-length" in self.headers:
                remaining = int(self.headers["content-length"])
                while remaining > 0:
                    data = await reader.read(min(remaining, 65536))
                    if not data:
                        raise HttpError("connection closed inside the body")
                    remaining -= len(data)
                    yield data
            else:
                self._conn.reusable = False
                while data := await reader.read(65536):
                    yield data
            self._done = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._conn.reusable = False
            raise HttpError(f"{type(exc).__name__}: {exc}") from None
        finally:
            self.release()

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    def release(self) -> None:
        if self._conn.reusable and self._done and self.headers.get("connection", "").lower() != "close":
            self._pool.put_back(self._conn)
        else:
            self._conn.close()


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reusable: bool = True
    idle_since: float = 0.0

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


class Http1Pool:
    def __init__(self, base_url: str, connect_timeout_s: float = 10.0, max_idle: int = 4096) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot use base URL {base_url!r}: need http://HOST[:PORT] or https://...")
        self.host = parts.hostname
        self.is_tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.is_tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self._ssl = ssl.create_default_context() if self.is_tls else None
        self._idle: list[_Connection] = []

    async def __aenter__(self) -> Http1Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def put_back(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    def _take_idle(self) -> _Connection | None:
        """The most recently used idle connection; ones idle past MAX_IDLE_S are closed
        (servers drop idle keep-alives after ~5 s, uvicorn's default)."""
        while self._idle:
            conn = self._idle.pop()
            if time.monotonic() - conn.idle_since < MAX_IDLE_S:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=1 << 20), self.connect_timeout_s)
        except (TimeoutError, OSError) as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        return _Connection(reader, writer)

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Response:
        """Send; return once the status line and headers are in. Read or release the body."""
        head = (f"POST {self.prefix}{path} HTTP/1.1\r\nhost: {self.host_header}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\naccept: */*\r\n")
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        data = head.encode("latin-1") + b"\r\n" + body
        # A kept-alive connection the server has since closed fails on first use, before the
        # server saw the request: try the next one, and only a fresh connection's failure counts.
        while True:
            conn = self._take_idle()
            fresh = conn is None
            if conn is None:
                conn = await self._connect()
            try:
                conn.writer.write(data)
                await conn.writer.drain()
                status_line = await conn.reader.readuntil(b"\r\n")
                break
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.close()
                if fresh:
                    raise HttpError(f"{type(exc).__name__}: {exc}") from None
        headers_out: dict[str, str] = {}
        try:
            _version, code, *_ = status_line.decode("latin-1").split(" ", 2)
            while (line := await conn.reader.readuntil(b"\r\n")) != b"\r\n":
                k, sep, v = line.decode("latin-1").partition(":")
                if sep:
                    headers_out[k.strip().lower()] = v.strip()
            return Response(int(code), headers_out, conn, self)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise HttpError(f"bad response: {type(exc).__name__}: {exc}") from None
