"""uvicorn's h11 protocol with a deadline on each request head (request line + headers).

uvicorn times out idle keep-alive connections, but a client that opens a connection (or
starts a new request on a kept-alive one) and then trickles or stalls its headers holds a
connection and a file descriptor for ever (slowloris). Here every request head must arrive
within `head_timeout_s` of the first moment the connection waits for one; otherwise the
client gets a 408 and the connection closes. Bodies are bounded in body_limits.py, where a
stalled body can be answered as an ordinary OpenAI-style error.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

_BODY = json.dumps({"error": {"message": "request headers did not arrive in time", "type": "invalid_request_error",
                              "param": None, "code": "request_timeout"}}).encode()
# Written raw: h11 refuses to send a response before it has parsed a request to answer.
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


class HeadTimeoutH11Protocol(H11Protocol):
    head_timeout_s: float = 10.0  # set by head_timeout_protocol()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._is_between_requests():
            self._arm_head_timer()  # a new request starts on a kept-alive connection
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

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
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def head_timeout_protocol(head_timeout_s: float) -> type[HeadTimeoutH11Protocol]:
    """The protocol class for uvicorn.Config(http=...), with this head deadline."""
    if head_timeout_s <= 0:
        raise ValueError(f"head_timeout_s must be > 0, got {head_timeout_s}")
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": head_timeout_s})
