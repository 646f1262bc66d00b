"""/metrics after known traffic: counts per endpoint and lane, refusals, lane gauges, budgets."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from tests.telemetry.fake_worker import FakeWorker
from tests.telemetry.gateway_factory import make_app
from tests.telemetry.metrics_scrape import sample

INLINE = {"endpoint": "inline-completion", "lane": "interactive"}
DRAFT = {"endpoint": "support-draft", "lane": "streaming"}


@pytest.fixture
def scraped(fake_worker: FakeWorker) -> str:
    with TestClient(make_app(fake_worker)) as client:
        for _ in range(3):
            time.sleep(0.005)  # more than the interactive lane's 2 ms window since the last arrival: idle
            assert client.post("/v1/endpoints/inline-completion/completions",
                               json={"prompt": "def f(", "max_tokens": 8}).status_code == 200
        for _ in range(2):
            with client.stream("POST", "/v1/endpoints/support-draft/chat/completions",
                               json={"messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
                assert r.status_code == 200
                r.read()
        refused = client.post("/v1/endpoints/inline-completion/completions", json={"prompt": "x", "max_tokens": 4},
                              headers={"x-laneway-deadline-ms": "0"})
        assert refused.status_code == 429
        r = client.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        return r.text


def test_requests_are_counted_by_outcome(scraped: str) -> None:
    assert sample(scraped, "laneway_requests_total", **INLINE, outcome="ok") == 3
    assert sample(scraped, "laneway_requests_total", **INLINE, outcome="refused") == 1
    assert sample(scraped, "laneway_requests_total", **DRAFT, outcome="ok") == 2
    assert sample(scraped, "laneway_request_refusals_total", **INLINE, reason="deadline") == 1


def test_latency_histograms_see_every_request_and_gap(scraped: str) -> None:
    assert sample(scraped, "laneway_time_to_first_token_seconds_count", **INLINE) == 3
    # Beside each TTFT, admission's prediction for the same request (the fake worker predicts 0).
    assert sample(scraped, "laneway_admission_predicted_wait_seconds_count", **INLINE) == 3
    assert sample(scraped, "laneway_admission_predicted_wait_seconds_count", **DRAFT) == 2
    assert sample(scraped, "laneway_e2e_request_latency_seconds_count", **INLINE) == 3
    assert sample(scraped, "laneway_lane_queue_wait_seconds_count", **INLINE) == 3
    assert sample(scraped, "laneway_inter_token_latency_seconds_count", **INLINE) == 3 * 3  # 4 tokens, 3 gaps
    assert sample(scraped, "laneway_inter_token_latency_seconds_count", **DRAFT) == 2 * 3
    # GenAI convention buckets: the TTFT histogram resolves single milliseconds.
    assert sample(scraped, "laneway_time_to_first_token_seconds_bucket", **INLINE, le="0.001") is not None
    # Each request found the interactive lane idle and left at once, not after its 2 ms window
    # (wait_when_idle): the histogram holds the real queue time.
    queue_sum = sample(scraped, "laneway_lane_queue_wait_seconds_sum", **INLINE)
    assert queue_sum is not None and queue_sum < 0.0019


def test_tokens_are_counted(scraped: str) -> None:
    assert sample(scraped, "laneway_generation_tokens_total", **INLINE) == 12
    assert sample(scraped, "laneway_prompt_tokens_total", **INLINE) == 21
    assert sample(scraped, "laneway_request_generation_tokens_sum", **INLINE) == 12
    assert sample(scraped, "laneway_lane_batch_size_count", **INLINE) == 3


def test_lane_gauges_and_budgets_come_from_the_live_dispatcher_and_policy(scraped: str) -> None:
    assert sample(scraped, "laneway_lane_batch_window_seconds", lane="interactive") == pytest.approx(0.002)
    assert sample(scraped, "laneway_lane_batch_window_seconds", lane="bulk") == pytest.approx(0.05)  # auto: min
    assert sample(scraped, "laneway_lane_queue_depth", lane="interactive") == 0
    assert sample(scraped, "laneway_lane_dispatched_requests_total", lane="interactive") == 3
    assert sample(scraped, "laneway_lane_in_flight_requests", lane="streaming") == 0
    assert sample(scraped, "laneway_endpoint_ttft_budget_seconds", endpoint="inline-completion") == pytest.approx(0.3)
    assert sample(scraped, "laneway_endpoint_tbt_budget_seconds", endpoint="support-draft") == pytest.approx(0.15)


def test_each_app_keeps_its_own_registry(fake_worker: FakeWorker) -> None:
    with TestClient(make_app(fake_worker)) as busy, TestClient(make_app(fake_worker)) as idle:
        busy.post("/v1/endpoints/inline-completion/completions", json={"prompt": "a", "max_tokens": 2})
        assert sample(busy.get("/metrics").text, "laneway_requests_total", **INLINE, outcome="ok") == 1
        assert sample(idle.get("/metrics").text, "laneway_requests_total", **INLINE, outcome="ok") is None


def test_the_no_lanes_baseline_has_no_queue_to_report(fake_worker: FakeWorker) -> None:
    with TestClient(make_app(fake_worker, use_lanes=False)) as client:
        assert client.post("/v1/endpoints/inline-completion/completions",
                           json={"prompt": "a", "max_tokens": 2}).status_code == 200
        text = client.get("/metrics").text
    assert sample(text, "laneway_requests_total", **INLINE, outcome="ok") == 1
    assert sample(text, "laneway_lane_queue_wait_seconds_count", **INLINE) == 0  # nothing queued
    assert sample(text, "laneway_lane_queue_depth", lane="interactive") is None
    assert sample(text, "laneway_endpoint_ttft_budget_seconds", endpoint="inline-completion") == pytest.approx(0.3)
