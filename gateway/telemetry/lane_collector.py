"""Gauges read at scrape time: each lane's queue and window, each endpoint's budget.

Read from the lane dispatcher's snapshot when Prometheus asks, never updated per request.
The /metrics handler runs on the event loop, the dispatcher's only thread, so the snapshot
is consistent. Budgets are exported beside the latencies so a dashboard can draw "TTFT p95
against budget" from the live policy, reloads included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.lanes_runtime.lane_stats import LaneStats
from lanes.policy_model import Policy

LaneSnapshot = Callable[[], dict[str, LaneStats]]


class LaneCollector(Collector):
    def __init__(self, policy: Callable[[], Policy], lanes: LaneSnapshot | None) -> None:
        self.policy = policy
        self.lanes = lanes  # None: the no-lanes baseline, nothing queues

    def collect(self) -> Iterator[Metric]:
        yield from self._lane_metrics()
        yield from self._budget_metrics()

    def _lane_metrics(self) -> Iterator[Metric]:
        if self.lanes is None:
            return
        depth = GaugeMetricFamily("laneway_lane_queue_depth", "Requests waiting in the lane queue.", labels=["lane"])
        window = GaugeMetricFamily("laneway_lane_batch_window_seconds", "Batch window new batches of the lane get "
                                   "(auto lanes: the controller's current choice).", labels=["lane"])
        in_flight = GaugeMetricFamily("laneway_lane_in_flight_requests", "Requests dispatched from the lane and "
                                      "not yet finished.", labels=["lane"])
        last_batch = GaugeMetricFamily("laneway_lane_last_batch_size", "Requests in the lane's last dispatched "
                                       "batch.", labels=["lane"])
        drain = GaugeMetricFamily("laneway_lane_drain_seconds_per_request", "Busy seconds per dispatched request "
                                  "(what admission predicts waits from).", labels=["lane"])
        unstarted = GaugeMetricFamily("laneway_lane_unstarted_requests", "Requests dispatched from the lane that "
                                      "have no first token yet (queued inside a worker, or prefilling).",
                                      labels=["lane"])
        start = GaugeMetricFamily("laneway_lane_start_seconds_per_request", "Busy seconds per dispatched request "
                                  "reaching its first token (admission's view of the workers' backlog).",
                                  labels=["lane"])
        dispatched = CounterMetricFamily("laneway_lane_dispatched_requests", "Requests dispatched from the lane.",
                                         labels=["lane"])
        for name, stats in sorted(self.lanes().items()):
            depth.add_metric([name], stats.queue_depth)
            window.add_metric([name], stats.window_ms / 1000.0)
            in_flight.add_metric([name], stats.num_in_flight)
            last_batch.add_metric([name], stats.last_batch_size)
            dispatched.add_metric([name], stats.num_dispatched)
            unstarted.add_metric([name], stats.num_unstarted)
            if stats.seconds_per_job is not None:
                drain.add_metric([name], stats.seconds_per_job)
            if stats.seconds_per_first_token is not None:
                start.add_metric([name], stats.seconds_per_first_token)
        yield from (depth, window, in_flight, last_batch, drain, unstarted, start, dispatched)

    def _budget_metrics(self) -> Iterator[Metric]:
        # Labelled by endpoint only: a budget is the endpoint's, whatever lane rules send it to.
        ttft = GaugeMetricFamily("laneway_endpoint_ttft_budget_seconds", "The endpoint's slo.ttft_p95_ms from the "
                                 "policy.", labels=["endpoint"])
        tbt = GaugeMetricFamily("laneway_endpoint_tbt_budget_seconds", "The endpoint's slo.tbt_p95_ms from the "
                                "policy.", labels=["endpoint"])
        for name, spec in sorted(self.policy().endpoints.items()):
            if spec.slo.ttft_p95_ms is not None:
                ttft.add_metric([name], spec.slo.ttft_p95_ms / 1000.0)
            if spec.slo.tbt_p95_ms is not None:
                tbt.add_metric([name], spec.slo.tbt_p95_ms / 1000.0)
        yield from (ttft, tbt)
