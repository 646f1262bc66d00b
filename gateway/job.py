"""A `Job` carries one HTTP request through the gateway: lane queue, dispatch, stream.

Domain objects between components; the only wire conversions live in gateway/wire.py.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.constraint import Constraint
from gateway.tools.plan import ToolPlan


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None


@dataclass(frozen=True)
class LaneTicket:
    """How the job's lane wants the worker to schedule it."""

    name: str
    priority: int
    preemptible: bool
    max_seq_share: float = 1.0
    max_kv_share: float = 1.0
    backfill: bool = False


@dataclass
class Job:
    endpoint: str
    tenant: str
    kind: Literal["completion", "chat"]
    prompt: str | list[int] | list[dict[str, Any]]  # chat: role, content, tool_calls, tool_call_id, name
    sampling: Sampling
    lane: LaneTicket
    stream: bool
    prompt_tokens_estimate: int
    stream_usage: bool = False  # stream_options.include_usage: a final usage-only event
    constraint: Constraint | None = None  # structured outputs / a forced tool call: the worker's grammar
    tools: ToolPlan | None = None  # chat with tools: what the template shows, how the output is read
    deadline: float | None = None  # unix seconds by which the first token must be produced
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex[:24]}")
    created: float = field(default_factory=time.time)
    enqueued_at: float | None = None
    dispatched_at: float | None = None
    batch_id: str = ""
    batch_size: int = 0
    trace_headers: dict[str, str] = field(default_factory=dict)

    @property
    def queue_wait_s(self) -> float | None:
        if self.enqueued_at is None or self.dispatched_at is None:
            return None
        return self.dispatched_at - self.enqueued_at


@dataclass(frozen=True)
class Chunk:
    """A piece of a worker's output stream, in gateway terms."""

    token_ids: list[int]
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    num_preemptions: int = 0
    logprobs: list[tuple[str, float, list[tuple[str, float]]]] = field(default_factory=list)
    has_usage: bool = False


@dataclass(frozen=True)
class WorkerLoad:
    num_running: int = 0
    num_waiting: int = 0
    num_free_kv_blocks: int = 0
    num_total_kv_blocks: int = 0
    num_queued_prefill_tokens: int = 0
    max_num_seqs: int = 1
    is_draining: bool = False

    @property
    def free_seq_slots(self) -> int:
        return max(0, self.max_num_seqs - self.num_running - self.num_waiting)

    @property
    def kv_free_fraction(self) -> float:
        return self.num_free_kv_blocks / self.num_total_kv_blocks if self.num_total_kv_blocks else 0.0
