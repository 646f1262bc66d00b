"""A client that leaves is a cancellation, counted by where the request was, never a success."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from telemetry import attributes as attr
from tests.telemetry.asgi_driver import post_and_leave
from tests.telemetry.fake_worker import FakeWorker
from tests.telemetry.gateway_factory import make_app
from tests.telemetry.metrics_scrape import sample


@pytest.fixture
def slow_worker() -> Iterator[FakeWorker]:
    worker = FakeWorker(num_tokens=40, token_delay_s=0.02).start()
    yield worker
    worker.stop()


def _cancel(worker: FakeWorker, path: str, body: dict, leave_after: int | None) -> tuple[str, dict]:
    exporter = InMemorySpanExporter()
    with TestClient(make_app(worker, exporter)) as client:
        sent = client.portal.call(post_and_leave, client.app, path, body, leave_after)
        metrics = client.get("/metrics").text
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(servers) == 1, sent
    return metrics, dict(servers[0].attributes or {})


def test_leaving_mid_stream_is_a_stream_cancellation(slow_worker: FakeWorker) -> None:
    metrics, a = _cancel(slow_worker, "/v1/endpoints/support-draft/chat/completions",
                         {"messages": [{"role": "user", "content": "hi"}], "stream": True}, leave_after=2)
    labels = {"endpoint": "support-draft", "lane": "streaming"}
    assert a[attr.OUTCOME] == attr.CANCELLED
    assert sample(metrics, "laneway_request_cancellations_total", **labels, stage="stream") == 1
    assert sample(metrics, "laneway_requests_total", **labels, outcome="ok") is None
    assert sample(metrics, "laneway_e2e_request_latency_seconds_count", **labels) == 0  # only finished requests


def test_leaving_while_queued_is_a_queue_cancellation(slow_worker: FakeWorker) -> None:
    # nightly-labeling rides the bulk lane: its batch waits at least a 50 ms window.
    metrics, a = _cancel(slow_worker, "/v1/endpoints/nightly-labeling/completions", {"prompt": "label me"},
                         leave_after=None)
    assert a[attr.OUTCOME] == attr.CANCELLED and a[attr.HTTP_STATUS_CODE] == 499
    assert sample(metrics, "laneway_request_cancellations_total", endpoint="nightly-labeling", lane="bulk",
                  stage="queue") == 1
    assert attr.RESPONSE_TIME_TO_FIRST_CHUNK not in a
