"""A worker's Prometheus metrics: what its engine holds and how each step went.

Served on `--metrics-port` from the worker's own registry. Names: `laneway_` prefix and
vLLM's suffixes where vLLM exports the same quantity, so vLLM dashboards translate:

  laneway_num_requests_running           vllm:num_requests_running
  laneway_num_requests_waiting           vllm:num_requests_waiting
  laneway_kv_cache_usage_perc            vllm:kv_cache_usage_perc (0..1)
  laneway_prefix_cache_queries_total     vllm:prefix_cache_queries_total (tokens)
  laneway_prefix_cache_hits_total        vllm:prefix_cache_hits_total (tokens)
  laneway_num_preemptions_total          vllm:num_preemptions_total
  laneway_iteration_tokens               vllm:iteration_tokens_total (a histogram; Prometheus
                                         keeps `_total` for counters, so ours drops it)
  laneway_request_queue_time_seconds     vllm:request_queue_time_seconds (the engine's queue)
  laneway_request_prefill_time_seconds   vllm:request_prefill_time_seconds
  laneway_request_decode_time_seconds    vllm:request_decode_time_seconds
  laneway_request_finished_total         vllm:request_success_total{finished_reason}

Laneway-only: laneway_kv_cache_used_blocks / _total_blocks, laneway_num_queued_prefill_tokens,
laneway_iteration_batch_size (sequences per step), laneway_iteration_duration_seconds, and the
lane signals of the step planner (scheduler.py):

  laneway_lane_step_seconds_total{lane}     step time spent on each lane's tokens: its share
                                            of the engine is rate(this) / rate(sum)
  laneway_lane_sat_out_total{lane}          steps a running deferrable sequence got no tokens
  laneway_lane_preemptions_total{lane}      preemptions by the victim's lane
  laneway_step_time_budget_seconds          the planner's current step-time limit (0: none)
  laneway_step_time_actual_over_predicted   each step's wall time / the cost model's prediction
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from telemetry import buckets
from workers.engine.engine import StepStats
from workers.engine.engine_loop import EngineLoop
from workers.engine.sequence import Sequence

LABELS = ("endpoint", "lane")
PREDICTION_RATIO = (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0)


class WorkerMetrics:
    def __init__(self, loop: EngineLoop, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.iteration_tokens = Histogram("laneway_iteration_tokens", "Tokens computed per engine step.",
                                          registry=r, buckets=buckets.TOKENS)
        self.iteration_batch_size = Histogram("laneway_iteration_batch_size", "Sequences per engine step.",
                                              registry=r, buckets=buckets.BATCH_SIZE)
        self.iteration_duration = Histogram("laneway_iteration_duration_seconds", "Wall time of one engine step.",
                                            registry=r, buckets=buckets.STEP_S)
        self.queue_time = Histogram("laneway_request_queue_time_seconds", "Arrival to first scheduled, in the "
                                    "engine's queue.", LABELS, registry=r, buckets=buckets.QUEUE_WAIT_S)
        self.prefill_time = Histogram("laneway_request_prefill_time_seconds", "First scheduled to first token.",
                                      LABELS, registry=r, buckets=buckets.TTFT_S)
        self.decode_time = Histogram("laneway_request_decode_time_seconds", "First token to finish.", LABELS,
                                     registry=r, buckets=buckets.REQUEST_DURATION_S)
        self.finished = Counter("laneway_request_finished", "Requests that left the engine, by finish reason "
                                "(stop, length, abort) or cancelled.", (*LABELS, "finished_reason"), registry=r)
        self.lane_step_seconds = Counter("laneway_lane_step_seconds", "Engine step time spent on each lane's "
                                         "tokens.", ("lane",), registry=r)
        self.lane_sat_out = Counter("laneway_lane_sat_out", "Steps a running deferrable sequence sat out (no "
                                    "time left for it; its KV kept).", ("lane",), registry=r)
        self.lane_preemptions = Counter("laneway_lane_preemptions", "Sequences preempted, by their lane.",
                                        ("lane",), registry=r)
        self.step_accuracy = Histogram("laneway_step_time_actual_over_predicted", "Each step's wall time over "
                                       "the cost model's prediction.", registry=r, buckets=PREDICTION_RATIO)
        r.register(EngineCollector(loop))

    def observe_step(self, stats: StepStats) -> None:
        """On the engine thread, once per step: a few counter and histogram updates, nothing else."""
        self.iteration_tokens.observe(stats.num_batched_tokens)
        self.iteration_batch_size.observe(stats.num_seqs)
        self.iteration_duration.observe(stats.duration_s)
        for lane, seconds in stats.lane_seconds.items():
            self.lane_step_seconds.labels(lane).inc(seconds)
        for lane, n in stats.sat_out.items():
            self.lane_sat_out.labels(lane).inc(n)
        for lane, n in stats.preempted.items():
            self.lane_preemptions.labels(lane).inc(n)
        if stats.predicted_s:
            self.step_accuracy.observe(stats.duration_s / stats.predicted_s)

    def observe_finished(self, seq: Sequence, endpoint: str, reason: str) -> None:
        labels = (endpoint, seq.lane.name)
        self.finished.labels(*labels, reason).inc()
        if seq.first_scheduled_time is not None:
            self.queue_time.labels(*labels).observe(seq.first_scheduled_time - seq.arrival_time)
            if seq.first_token_time is not None:
                self.prefill_time.labels(*labels).observe(seq.first_token_time - seq.first_scheduled_time)
                if seq.finish_time is not None:
                    self.decode_time.labels(*labels).observe(seq.finish_time - seq.first_token_time)


class EngineCollector(Collector):
    """Gauges and counters read at scrape time from the engine's published state.

    Scrapes run on the metrics server's thread: they read the load snapshot the engine
    thread replaces after every step and plain integer counters, never the scheduler's lists.
    """

    def __init__(self, loop: EngineLoop) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        load = self.loop.load
        engine = self.loop.engine
        bm = engine.scheduler.block_manager
        used = load.num_total_kv_blocks - load.num_free_kv_blocks
        yield GaugeMetricFamily("laneway_num_requests_running", "Sequences holding KV blocks.",
                                value=load.num_running)
        yield GaugeMetricFamily("laneway_num_requests_waiting", "Sequences queued in the engine.",
                                value=load.num_waiting)
        yield GaugeMetricFamily("laneway_num_queued_prefill_tokens", "Prompt tokens not yet computed.",
                                value=load.num_queued_prefill_tokens)
        budget = load.step_time_budget_s
        yield GaugeMetricFamily("laneway_step_time_budget_seconds", "The planner's step-time limit (0: none).",
                                value=0.0 if budget == float("inf") else budget)
        yield GaugeMetricFamily("laneway_kv_cache_used_blocks", "KV blocks owned by live sequences.", value=used)
        yield GaugeMetricFamily("laneway_kv_cache_total_blocks", "KV blocks in the pool.",
                                value=load.num_total_kv_blocks)
        yield GaugeMetricFamily("laneway_kv_cache_usage_perc", "Share of KV blocks in use, 0..1.",
                                value=used / load.num_total_kv_blocks if load.num_total_kv_blocks else 0.0)
        yield CounterMetricFamily("laneway_prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
                                  value=bm.num_prefix_queried_tokens)
        yield CounterMetricFamily("laneway_prefix_cache_hits", "Prompt tokens served from the prefix cache.",
                                  value=bm.num_prefix_hit_tokens)
        yield CounterMetricFamily("laneway_num_preemptions", "Sequences preempted (freed, to be recomputed).",
                                  value=engine.num_preemptions)
