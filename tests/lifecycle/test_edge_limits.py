"""Bad input at the HTTP edge: oversized bodies get 413, slow clients are cut off.

Raw sockets, because an HTTP client library would neither stall on purpose nor send a
body larger than it declared. This module's gateway runs with a 64 KiB body limit and 1 s
to send a request head or a body chunk; every socket read below is bounded by RECV_S,
so a gateway that keeps a stalled connection open fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.lifecycle.conftest import Cluster, post_completion, start_gateway, url
from tests.support.processes import Proc

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024
RECV_S = 15.0  # far above the gateway's 1 s limits: only reached if it never cuts the client off


@pytest.fixture(scope="module")
def cluster(lifecycle_tmp: Path, policy_path: Path, shared_worker: Proc) -> Iterator[Cluster]:
    """A gateway of its own, with limits small enough to test quickly."""
    gateway = start_gateway(lifecycle_tmp, [shared_worker], policy_path, "--max-body-bytes", str(LIMIT),
                            "--request-head-timeout", "1", "--request-body-timeout", "1", name="edge-gateway")
    yield Cluster(url(gateway), gateway, shared_worker, None, lifecycle_tmp)
    gateway.stop()


def _raw(cluster: Cluster, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", cluster.gateway.port), timeout=RECV_S)
    sock.sendall(data)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the gateway closes the connection (raises socket.timeout if it never does).
    A close with our bytes still unread on its side arrives as a reset: closed all the same."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def test_declared_oversized_body_is_refused_with_413_before_it_is_sent(cluster: Cluster) -> None:
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {LIMIT * 100}\r\n\r\n").encode()
    with _raw(cluster, head) as sock:  # not one byte of the 6.4 MB body is sent
        raw = _read_all(sock)
    status, body = _status_and_body(raw)
    print(f"tried: Content-Length {LIMIT * 100} against a {LIMIT}-byte limit, no body; observed: {status} {body}")
    assert status == 413, raw[:300]
    assert body["error"]["code"] == "request_too_large"
    assert b"connection: close" in raw.lower(), "the unread body must not be parsed as a next request"


def test_chunked_body_growing_past_the_limit_is_cut_with_413(cluster: Cluster) -> None:
    chunk = b"a" * 8192
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2))
    with _raw(cluster, head + body) as sock:
        raw = _read_all(sock)
    status, payload = _status_and_body(raw)
    print(f"tried: {len(body)} chunked bytes with no Content-Length; observed: {status} {payload}")
    assert status == 413, raw[:300]


def test_httpx_sees_413_as_an_openai_error(cluster: Cluster) -> None:
    r = post_completion(cluster.base, prompt="x" * (LIMIT + 1))
    print(f"tried: a {LIMIT + 1}-character prompt; observed: {r.status_code} {r.text[:200]}")
    assert r.status_code == 413
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_client_that_stalls_mid_headers_is_cut_off(cluster: Cluster) -> None:
    with _raw(cluster, b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: appl") as sock:
        raw = _read_all(sock)  # the gateway closes; a timeout here means it never would
    print(f"tried: half a request head, then silence; observed: {raw[:60]!r} and the connection closed")
    assert raw.startswith(b"HTTP/1.1 408"), raw[:300]


def test_client_that_sends_headers_then_stalls_the_body_is_cut_off(cluster: Cluster) -> None:
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{\"prompt\": \"hel")
    with _raw(cluster, head) as sock:
        raw = _read_all(sock)
    status, body = _status_and_body(raw)
    print(f"tried: complete headers, 15 of 200 body bytes, then silence; observed: {status} {body}")
    assert status == 408, raw[:300]
    assert body["error"]["code"] == "request_timeout"


def test_idle_connection_without_a_request_is_closed(cluster: Cluster) -> None:
    with _raw(cluster, b"") as sock:
        raw = _read_all(sock)
    print(f"tried: connect and send nothing; observed: {raw[:40]!r}, then the connection closed")
    assert raw == b"" or raw.startswith(b"HTTP/1.1 408"), raw[:300]


def test_oversized_headers_are_refused(cluster: Cluster) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Padding: " + b"p" * (128 * 1024) + b"\r\n\r\n"
    with _raw(cluster, head) as sock:
        raw = _read_all(sock)
    print(f"tried: a {len(head)}-byte request head against the 64 KiB head limit; observed: {raw[:40]!r}, "
          "then the connection closed")
    # The 431 may be lost to the reset that closing with our bytes unread causes; a 200 never.
    assert raw == b"" or raw.startswith(b"HTTP/1.1 431"), raw[:300]


def test_oversized_headers_trickled_in_small_reads_are_refused(cluster: Cluster) -> None:
    with _raw(cluster, b"GET /healthz HTTP/1.1\r\nHost: gw\r\n") as sock:
        line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
        try:
            for _ in range(LIMIT // len(line) + 2):  # past 64 KiB, no blank line yet
                sock.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us mid-way: what the test wants
        raw = _read_all(sock)
    print(f"tried: a request head growing 1 KB per write past 64 KiB; observed: {raw[:60]!r}, then closed")
    assert raw == b"" or raw.startswith(b"HTTP/1.1 431"), raw[:300]
    if raw:
        assert _status_and_body(raw)[1]["error"]["code"] == "request_header_too_large"


def test_a_body_larger_than_the_head_limit_is_not_counted_as_head(cluster: Cluster) -> None:
    """The head limit stops at the blank line: a body past it (here within the body limit of
    this module's gateway, which equals the head limit, so a smaller one) is the body's business."""
    body = b'{"prompt": "hello", "max_tokens": 4' + b" " * (LIMIT - 4096) + b"}"  # JSON whitespace
    r = httpx.post(f"{cluster.base}/v1/endpoints/inline/completions", content=body,
                   headers={"content-type": "application/json"}, timeout=30)
    print(f"tried: a {len(body)}-byte body behind a small head; observed: {r.status_code}")
    assert r.status_code == 200, r.text[:300]


def test_gateway_still_serves_after_the_abuse(cluster: Cluster) -> None:
    r = post_completion(cluster.base)
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{cluster.logs()}"
    assert httpx.get(f"{cluster.base}/readyz", timeout=5).status_code == 200
