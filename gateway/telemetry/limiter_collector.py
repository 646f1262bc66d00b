"""Counters of requests the rate limiter could not check (Redis unavailable), read at scrape time.

A fail-open endpoint serves such requests and a fail-closed one refuses them (those refusals
also appear in laneway_request_refusals with reason redis-unavailable); either way an
operator must see how much traffic ran without its limits while Redis was away.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.ratelimit import Limiter


class LimiterCollector(Collector):
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter  # without Redis: NoLimits, whose counters stay at 0

    def collect(self) -> Iterator[Metric]:
        limiter = self.limiter
        unchecked = CounterMetricFamily("laneway_ratelimit_unchecked_requests", "Requests served without a rate "
                                        "limit check: Redis unavailable and the endpoint fails open.")
        unchecked.add_metric([], limiter.num_unchecked)
        refused = CounterMetricFamily("laneway_ratelimit_unavailable_refusals", "Requests refused with 503: "
                                      "Redis unavailable and the endpoint fails closed.")
        refused.add_metric([], limiter.num_refused_unavailable)
        yield from (unchecked, refused)
