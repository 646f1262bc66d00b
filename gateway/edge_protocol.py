"""uvicorn's httptools protocol with a deadline and a size limit on each request head.

httptools parses with llhttp, in C, where h11 is pure Python, which matters on a streaming
gateway: every SSE chunk goes through the protocol's send path. It has no limit of its own
on a request head, so this protocol keeps one.

- **Deadline.** uvicorn times out idle keep-alive connections, but a client that opens a
  connection (or starts a new request on a kept-alive one) and then trickles or stalls its
  headers holds a connection and a file descriptor for ever (slowloris). Here every request
  head must arrive within `head_timeout_s` of the first moment the connection waits for one;
  otherwise the client gets a 408 and the connection closes.
- **Size.** A request head (request line and headers, up to the blank line) larger than
  `max_head_bytes` gets a 431 and the connection closes, before the parser sees the excess.

Bodies are bounded in body_limits.py, where a stalled body can be answered as an ordinary
OpenAI-style error.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


def _raw_error(status_line: bytes, message: str, code: str) -> bytes:
    """A whole response, written before any request exists for the app to answer."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": code}}).encode()
    return (status_line + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


TIMEOUT_RESPONSE = _raw_error(b"HTTP/1.1 408 Request Timeout", "request headers did not arrive in time",
                              "request_timeout")
HEAD_TOO_LARGE_RESPONSE = _raw_error(b"HTTP/1.1 431 Request Header Fields Too Large",
                                     "the request line and headers are too large", "request_header_too_large")
_HEAD_END = b"\r\n\r\n"


class EdgeProtocol(HttpToolsProtocol):
    head_timeout_s: float = 10.0  # set by edge_protocol()
    max_head_bytes: int = 64 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes of the pending request head seen so far
        self._head_tail = b""  # its last 3 bytes: a blank line may straddle two reads
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._is_between_requests():
            if self._head_timer is None:
                self._arm_head_timer()  # a new request starts on a kept-alive connection
            if not self._head_fits(data):
                self.logger.info("closing a connection whose request head is over %d bytes", self.max_head_bytes)
                self._close_with(HEAD_TOO_LARGE_RESPONSE)
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_fits(self, data: bytes) -> bool:
        """Count the pending head's bytes up to its blank line: within max_head_bytes?"""
        window = self._head_tail + data
        end = window.find(_HEAD_END)
        if end >= 0:  # the head ends in this read; what follows is its body or a next request
            size = self._head_bytes - len(self._head_tail) + end + len(_HEAD_END)
            self._head_bytes, self._head_tail = 0, b""
            return size <= self.max_head_bytes
        self._head_bytes += len(data)
        self._head_tail = window[-(len(_HEAD_END) - 1):]
        return self._head_bytes <= self.max_head_bytes

    def _is_between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._on_head_timeout, self.cycle)

    def _on_head_timeout(self, armed_for: RequestResponseCycle | None) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._is_between_requests():
            return  # a request is being served: its body and response are not this timer's business
        if self.cycle is not armed_for:
            self._arm_head_timer()  # requests completed meanwhile; the next head gets its own deadline
            return
        self.logger.info("closing a connection whose request head did not arrive within %.1fs", self.head_timeout_s)
        self._close_with(TIMEOUT_RESPONSE)

    def _close_with(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()


def edge_protocol(head_timeout_s: float, max_head_bytes: int) -> type[EdgeProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these head limits."""
    if head_timeout_s <= 0:
        raise ValueError(f"head_timeout_s must be > 0, got {head_timeout_s}")
    if max_head_bytes <= 0:
        raise ValueError(f"max_head_bytes must be > 0, got {max_head_bytes}")
    return type("EdgeProtocol", (EdgeProtocol,), {"head_timeout_s": head_timeout_s, "max_head_bytes": max_head_bytes})
