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
from lanes.lane import FAIR, LaneSpec

JobKind = Literal["completion", "chat"]  # which OpenAI endpoint the request came in on


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
    n: int = 1  # choices per prompt
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    min_tokens: int = 0
    echo: bool = False  # completions: the prompt's text before each choice's text
    prompt_logprobs: int | None = None  # completions' echo with logprobs
    # Values above that are defaults, not the client's: the worker clamps a default
    # max_tokens to the context left, and gives a default temperature/top_p/top_k (one the
    # endpoint's policy did not set either) to the model's generation_config.json.
    max_tokens_is_default: bool = False
    temperature_is_default: bool = False
    top_p_is_default: bool = False
    top_k_is_default: bool = False


@dataclass(frozen=True)
class PromptList:
    """A completion request's list of prompts (strings or token ids): n choices for each."""

    items: tuple[str | tuple[int, ...], ...]


@dataclass(frozen=True)
class LaneTicket:
    """How the job's lane wants the worker to schedule it."""

    name: str
    priority: int
    preemptible: bool
    max_seq_share: float = 1.0
    max_kv_share: float = 1.0
    backfill: bool = False
    min_share: float = 0.0  # share of each worker step kept for the lane (preemptible lanes)
    fair_tenants: bool = False  # the worker orders the lane by tenant (fair shares), not by arrival
    stream_interval_ms: float = 0.0  # the worker sends a stream's tokens at most once per this, after the first

    @classmethod
    def for_lane(cls, name: str, spec: LaneSpec) -> LaneTicket:
        return cls(name=name, priority=spec.priority, preemptible=spec.preemptible,
                   max_seq_share=spec.capacity_share.seqs, max_kv_share=spec.capacity_share.kv,
                   backfill=spec.backfill, min_share=spec.min_share, fair_tenants=spec.fairness == FAIR,
                   stream_interval_ms=spec.stream_interval_ms)


@dataclass(frozen=True)
class LatencyTargets:
    """What the job's endpoint promises (its slo), in ms; None: no promise. The worker sizes
    its steps and orders prefills to keep them."""

    ttft_ms: float | None = None
    tbt_ms: float | None = None


@dataclass
class Job:
    endpoint: str
    tenant: str
    kind: JobKind
    prompt: str | list[int] | list[dict[str, Any]] | PromptList  # chat: role, content, tool_calls, tool_call_id, name
    sampling: Sampling
    lane: LaneTicket
    stream: bool
    prompt_tokens_estimate: int
    stream_usage: bool = False  # stream_options.include_usage: a final usage-only event
    constraint: Constraint | None = None  # structured outputs / a forced tool call: the worker's grammar
    tools: ToolPlan | None = None  # chat with tools: what the template shows, how the output is read
    deadline: float | None = None  # unix seconds by which the first token must be produced
    targets: LatencyTargets = LatencyTargets()
    tenant_weight: float = 1.0  # the tenant's weight in fair shares (policy), as the worker orders its lane
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex[:24]}")
    created: float = field(default_factory=time.time)
    enqueued_at: float | None = None
    dispatched_at: float | None = None
    predicted_wait_s: float | None = None  # admission's predicted wait before the job starts
    num_output_tokens: int = 0  # generated so far (fair queuing gives back what it was charged and did not use)
    batch_id: str = ""
    batch_size: int = 0
    trace_headers: dict[str, str] = field(default_factory=dict)

    @property
    def num_choices(self) -> int:
        num_prompts = len(self.prompt.items) if isinstance(self.prompt, PromptList) else 1
        return num_prompts * self.sampling.n

    @property
    def uses_tools(self) -> bool:
        """A chat job offered tools it may call: its output is read for calls."""
        return self.tools is not None and self.tools.mode != "none"

    @property
    def max_total_tokens(self) -> int:
        """Most tokens the job can use: its prompts and every choice's max_tokens (rate limits)."""
        return self.prompt_tokens_estimate + self.num_choices * self.sampling.max_tokens

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
    index: int = 0  # the choice this chunk belongs to
    prompt_text: str = ""  # on a choice's first chunk, with echo
    # On a choice's first chunk, with echo and logprobs: one per prompt token, the first without
    # a logprob (None) or alternatives.
    prompt_logprobs: list[tuple[str, float | None, list[tuple[str, float]]]] = field(default_factory=list)


@dataclass(frozen=True)
class LaneLoad:
    """One lane's backlog on one worker, as the worker reports it."""

    name: str
    priority: int
    preemptible: bool
    num_running: int = 0
    num_waiting: int = 0
    num_queued_prefill_tokens: int = 0
    # Before a new request of this lane would start its prefill there: the prefill backlog of
    # this lane and of more urgent latency lanes, by the worker's cost model (0 without one).
    predicted_wait_ms: float = 0.0


@dataclass(frozen=True)
class WorkerLoad:
    num_running: int = 0
    num_waiting: int = 0
    num_free_kv_blocks: int = 0
    num_total_kv_blocks: int = 0
    num_queued_prefill_tokens: int = 0
    max_num_seqs: int = 1
    is_draining: bool = False
    lanes: tuple[LaneLoad, ...] = ()  # lanes with work there (or seen lately); older workers: none
    step_time_budget_ms: float = 0.0  # the worker's step-time limit; 0: no step-time model binds
    num_bulk_slots: int = 0  # more preemptible sequences its steps have time for (see has_step_budget)

    @property
    def free_seq_slots(self) -> int:
        return max(0, self.max_num_seqs - self.num_running - self.num_waiting)

    @property
    def has_step_budget(self) -> bool:
        """True when num_bulk_slots is sized by step time; otherwise (token mode, an older
        worker, or no latency work to protect) free sequence slots are the headroom."""
        return self.step_time_budget_ms > 0

    @property
    def kv_free_fraction(self) -> float:
        return self.num_free_kv_blocks / self.num_total_kv_blocks if self.num_total_kv_blocks else 0.0
