"""A lane: one queue with its own batch window, admission limits and share of workers.

Batching buys throughput by spending queue time; a lane is where that trade is set.
Every lane has a kind, which says what its requests need from the system:

- interactive: someone is waiting for the whole answer (inline completion, tagging);
  budget is TTFT, batch windows are a few ms.
- streaming: someone watches tokens arrive (chat, drafts); budgets are TTFT and TBT.
- bulk: nobody is waiting (nightly jobs, indexing); throughput wins, queues are long.

A lane named `interactive`, `streaming` or `bulk` takes its kind from its name; any
other lane name must say `kind:`. The gateway uses the kind for defaults it cannot
read from numbers (e.g. only bulk lanes take Batch API jobs).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, Strict, model_validator

from lanes.spec import Count, Ms, PositiveMs, Problem, Spec, Text, show_number

FAIR: Final = "tenants"  # fair queuing between tenants (gateway/lanes_runtime/fair_share.py)
FCFS: Final = "fcfs"  # first come, first served
# A floor above half of every step would make the preemptible lane the priority one.
MAX_MIN_SHARE = 0.5


class LaneKind(str, Enum):
    INTERACTIVE = "interactive"
    STREAMING = "streaming"
    BULK = "bulk"


class BatchWindow(Spec):
    """How long the first request of a batch may wait for company, in ms.

    Written either as a number (a fixed window) or as `{auto: true, min: MS, max: MS}`,
    which lets the gateway tune the window to traffic inside those bounds. A fixed
    window is stored as min == max.
    """

    auto: Annotated[bool, Strict()] = False
    """true: the gateway tunes the window between min and max from observed traffic."""
    min_ms: Ms = Field(alias="min")
    """Smallest window the tuner may choose, ms."""
    max_ms: Ms = Field(alias="max")
    """Largest window the tuner may choose, ms."""

    @model_validator(mode="after")
    def _check_bounds(self) -> BatchWindow:
        if self.min_ms > self.max_ms:
            raise Problem(("max",), self.max_ms, f"at least min ({show_number(self.min_ms)} ms)")
        if not self.auto and self.min_ms != self.max_ms:
            raise Problem(("auto",), self.auto, "true when min and max differ (a fixed window has one value)")
        return self

    @property
    def is_fixed(self) -> bool:
        return not self.auto


def _window_from_number(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # `true` is not a number
        return {"min": value, "max": value}
    raise Problem((), value, "a number of ms, or {auto: true, min: MS, max: MS}")


WindowInput = Annotated[
    BatchWindow,
    BeforeValidator(_window_from_number, json_schema_input_type=float | BatchWindow),
]


class CapacityShare(Spec):
    """Largest share of each worker this lane may hold at once, as a fraction in (0, 1]."""

    seqs: Annotated[float, Strict(), Field(gt=0, le=1)] = 1.0
    """Share of the worker's running sequences (its max batch)."""
    kv: Annotated[float, Strict(), Field(gt=0, le=1)] = 1.0
    """Share of the worker's KV-cache blocks (its memory for context)."""


class LaneSpec(Spec):
    """One queue: how long requests may wait, how many leave together, how much they hold."""

    kind: LaneKind
    """interactive, streaming or bulk. May be left out when the lane is named after its kind."""
    description: Text = ""
    """Free text for people reading the policy."""
    priority: Annotated[int, Strict(), Field(ge=0)]
    """Lower number is served first (0 is the most urgent). Lanes may share a number."""
    batch_window: WindowInput = Field(alias="batch_window_ms")
    """ms the first request of a batch may wait for others: a number or {auto: true, min, max}."""
    max_batch_size: Count
    """Most requests sent to a worker together when the window closes."""
    max_queue_depth: Count
    """Most requests waiting in this lane; beyond it new requests are refused (429)."""
    max_queue_wait_ms: PositiveMs
    """Longest a request may wait in the queue before it is refused or expires, ms."""
    capacity_share: CapacityShare = CapacityShare()
    """Largest share of a worker's sequences and KV memory this lane may hold."""
    preemptible: Annotated[bool, Strict()] = False
    """true: running requests may be paused (and recomputed later) to serve higher priorities."""
    backfill: Annotated[bool, Strict()] = False
    """true: uses only capacity the other lanes leave idle, and gives it back when they need it."""
    min_share: Annotated[float, Strict(), Field(ge=0, le=MAX_MIN_SHARE, allow_inf_nan=False)] = 0.0
    """Share of each worker step's time kept for this lane while it has work, 0 to 0.5
    (preemptible lanes only): how far more urgent lanes may push it aside, so bulk still finishes."""

    stream_interval_ms: Ms = 0.0
    """After a stream's first token, how long (ms) a token may wait on the worker for those
    made after it; they leave together. 0: every token leaves as it is made. One
    message for several tokens costs the worker, the gateway and the client less CPU per
    token; on a busy machine that CPU is the model's. Must stay below the TBT targets
    (slo.tbt_p95_ms) of the lane's endpoints."""

    wait_when_idle: Annotated[bool, Strict()] | None = None
    """true: a request that finds the lane idle (nothing queued, no arrival within the last
    window) still waits out the window for company; false: it leaves at once, since no company
    is in sight and workers batch running requests step by step anyway. Left out: true on bulk
    lanes (their windows grow batches), false on interactive and streaming lanes (a lone
    request would only lose its whole window of TTFT)."""

    fairness: Literal["tenants", "fcfs"] = FAIR
    """tenants: the next request to leave is the oldest of the tenant served least in this lane
    (by tokens, over its weight), so one tenant's burst cannot take the lane from the others;
    fcfs: first come, first served."""

    @property
    def waits_when_idle(self) -> bool:
        """wait_when_idle, or its default for the lane's kind."""
        return self.kind is LaneKind.BULK if self.wait_when_idle is None else self.wait_when_idle

    @model_validator(mode="after")
    def _check_consistency(self) -> LaneSpec:
        if self.batch_window.max_ms > self.max_queue_wait_ms:
            raise Problem(
                ("batch_window_ms",),
                self.batch_window.max_ms,
                f"at most max_queue_wait_ms ({show_number(self.max_queue_wait_ms)} ms); "
                "a window longer than the longest legal wait expires every request",
            )
        if self.backfill and not self.preemptible:
            # Borrowed capacity can only be handed back by preempting the borrower.
            raise Problem(("preemptible",), self.preemptible, "true for a backfill lane")
        if self.min_share > 0 and not self.preemptible:
            # A lane that is never pushed aside needs no floor; on a latency lane it would
            # only reserve step time that its own budget already claims.
            raise Problem(("min_share",), self.min_share,
                          "0 on a lane that is not preemptible (only lanes that give way need a floor)")
        return self
