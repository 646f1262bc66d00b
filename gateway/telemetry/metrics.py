"""The gateway's Prometheus metrics, per endpoint and lane, in a registry of its own.

Each app gets its own CollectorRegistry (never prometheus_client's global one), so two
apps in one process keep separate counts. Names: `laneway_` prefix, base units, and the
suffix vLLM uses wherever vLLM exports the same quantity:

  laneway_time_to_first_token_seconds    vllm:time_to_first_token_seconds
  laneway_inter_token_latency_seconds    vllm:inter_token_latency_seconds
  laneway_e2e_request_latency_seconds    vllm:e2e_request_latency_seconds
  laneway_prompt_tokens_total            vllm:prompt_tokens_total
  laneway_generation_tokens_total        vllm:generation_tokens_total
  laneway_request_prompt_tokens          vllm:request_prompt_tokens
  laneway_request_generation_tokens      vllm:request_generation_tokens
  laneway_requests_total{outcome}        vllm:request_success_total{finished_reason} (all outcomes)

Laneway-only: laneway_lane_queue_wait_seconds (the gateway lane queue; the worker's own
queue is laneway_request_queue_time_seconds on the worker), laneway_request_refusals_total
{reason}, laneway_request_cancellations_total{stage}, laneway_lane_batch_size,
laneway_admission_predicted_wait_seconds, and the gauges of lane_collector.py. Latencies
are measured at the gateway, queue included: what the endpoint's budget is about.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from telemetry import buckets

LABELS = ("endpoint", "lane")


@dataclass(frozen=True)
class LaneInstruments:
    """The histogram children of one (endpoint, lane): looked up once per request, not per chunk."""

    queue_wait: Histogram
    ttft: Histogram
    predicted_wait: Histogram
    itl: Histogram
    e2e: Histogram
    prompt_tokens: Counter
    generation_tokens: Counter
    request_prompt_tokens: Histogram
    request_generation_tokens: Histogram
    batch_size: Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("laneway_requests", "Requests by how they ended: ok, aborted, refused, invalid, "
                                "error, cancelled.", (*LABELS, "outcome"), registry=r)
        self.refusals = Counter("laneway_request_refusals", "Requests refused for capacity or rate (429/503 with "
                                "x-laneway-reject-reason), by reason.", (*LABELS, "reason"), registry=r)
        self.cancellations = Counter("laneway_request_cancellations", "Requests whose client went away, by where "
                                     "they were: intake, queue, worker (no token yet), stream.",
                                     (*LABELS, "stage"), registry=r)
        self.queue_wait = Histogram("laneway_lane_queue_wait_seconds", "Time in the gateway lane queue, "
                                    "batch window included.", LABELS, registry=r, buckets=buckets.QUEUE_WAIT_S)
        self.ttft = Histogram("laneway_time_to_first_token_seconds", "Request received to first token at the "
                              "gateway, queue included.", LABELS, registry=r, buckets=buckets.TTFT_S)
        # Admission refuses on a prediction; this shows whether the prediction is honest. A
        # histogram of the prediction itself, with the TTFT buckets and for the same requests (those
        # that got a first token), rather than of actual/predicted: the prediction is 0 whenever
        # nothing is ahead, the usual case, where a ratio is undefined. p95 predicted against p95
        # TTFT per endpoint reads as one panel; each request's pair is on its trace span.
        self.predicted_wait = Histogram("laneway_admission_predicted_wait_seconds", "The wait admission "
                                        "predicted for a request before it would start (its lane queue and "
                                        "the backlog ahead of it on the workers), observed with its first "
                                        "token: compare with laneway_time_to_first_token_seconds.", LABELS,
                                        registry=r, buckets=buckets.TTFT_S)
        self.itl = Histogram("laneway_inter_token_latency_seconds", "Gap between consecutive output chunks of a "
                             "request at the gateway (TBT).", LABELS, registry=r, buckets=buckets.TIME_PER_TOKEN_S)
        self.e2e = Histogram("laneway_e2e_request_latency_seconds", "Request received to last byte sent, for "
                             "requests that finished.", LABELS, registry=r, buckets=buckets.REQUEST_DURATION_S)
        self.prompt_tokens = Counter("laneway_prompt_tokens", "Prompt tokens of requests a worker served.",
                                     LABELS, registry=r)
        self.generation_tokens = Counter("laneway_generation_tokens", "Output tokens sent to clients.",
                                         LABELS, registry=r)
        self.request_prompt_tokens = Histogram("laneway_request_prompt_tokens", "Prompt tokens per finished "
                                               "request.", LABELS, registry=r, buckets=buckets.TOKENS)
        self.request_generation_tokens = Histogram("laneway_request_generation_tokens", "Output tokens per "
                                                   "finished request.", LABELS, registry=r, buckets=buckets.TOKENS)
        self.batch_size = Histogram("laneway_lane_batch_size", "Size of the lane batch each request left with "
                                    "(request-weighted).", LABELS, registry=r, buckets=buckets.BATCH_SIZE)
        self._instruments: dict[tuple[str, str], LaneInstruments] = {}

    def for_lane(self, endpoint: str, lane: str) -> LaneInstruments:
        key = (endpoint, lane)
        found = self._instruments.get(key)
        if found is None:
            found = LaneInstruments(
                queue_wait=self.queue_wait.labels(*key), ttft=self.ttft.labels(*key),
                predicted_wait=self.predicted_wait.labels(*key), itl=self.itl.labels(*key),
                e2e=self.e2e.labels(*key), prompt_tokens=self.prompt_tokens.labels(*key),
                generation_tokens=self.generation_tokens.labels(*key),
                request_prompt_tokens=self.request_prompt_tokens.labels(*key),
                request_generation_tokens=self.request_generation_tokens.labels(*key),
                batch_size=self.batch_size.labels(*key))
            self._instruments[key] = found
        return found
