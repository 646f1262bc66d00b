"""One `Sequence` carries a request through the worker: queue, schedule, KV, sampling, output.

Nothing else keeps per-request facts. The scheduling rule reads only two counters:
`num_computed_tokens` (tokens whose K/V are in the paged cache) and `num_tokens`
(prompt + generated tokens known so far). Prefill, chunked prefill, prefix-cache hits,
recompute after preemption and decode are all "let the first catch up with the second".
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from workers.engine.request_error import InvalidRequest

if TYPE_CHECKING:
    from workers.engine.detokenizer import IncrementalDetokenizer
    from workers.engine.outputs import RequestOutput
    from workers.grammar.matcher import GrammarMatcher

_arrival_counter = itertools.count()
MAX_MIN_SHARE = 0.5  # a lane's min_share: a floor above half of every step would make bulk the priority
MAX_LOGPROBS = 20  # alternatives per token a request may ask for
MAX_PENALTY = 2.0  # presence and frequency penalties lie in [-2, 2], as OpenAI's
MAX_LOGIT_BIAS = 100.0  # a logit_bias value lies in [-100, 100], as OpenAI's


class SeqStatus(IntEnum):
    """Ordered: every status >= FINISHED_STOPPED is a finished one."""

    WAITING = 0
    RUNNING = 1
    # Holds its KV but not a sequence slot: set aside so an under-served tenant of its fair
    # lane gets a slot; back to RUNNING when one frees (scheduler.py, the slot rule).
    SUSPENDED = 2
    FINISHED_STOPPED = 10
    FINISHED_LENGTH = 11
    FINISHED_ABORTED = 12

    @property
    def is_finished(self) -> bool:
        return self >= SeqStatus.FINISHED_STOPPED

    @property
    def finish_reason(self) -> str | None:
        return _FINISH_REASONS.get(self)


_FINISH_REASONS = {
    SeqStatus.FINISHED_STOPPED: "stop",
    SeqStatus.FINISHED_LENGTH: "length",
    SeqStatus.FINISHED_ABORTED: "abort",
}


@dataclass(frozen=True)
class SamplingParams:
    """A request's sampling choices, valid by construction: bad values raise InvalidRequest here,
    so the sampler and detokenizer on the engine thread never meet one. Limits that depend on
    the model (stop token ids inside the vocabulary) are the wire module's to check."""

    max_tokens: int = 16
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0  # 1 means off
    top_k: int = 0  # 0 means off
    seed: int | None = None  # same seed -> same tokens, whatever else is in the batch
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None  # None: no logprobs; k >= 0: sampled token plus top-k
    # Logit adjustments (workers/sampling/penalties.py, logit_bias.py), applied before
    # temperature, top-k and top-p; the defaults leave the logits as they are.
    presence_penalty: float = 0.0  # minus this for every token already in the output
    frequency_penalty: float = 0.0  # minus this times each token's count in the output
    repetition_penalty: float = 1.0  # prompt or output tokens: positive logits / p, negative * p
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit); ids checked by the wire
    min_tokens: int = 0  # eos and stop token ids are masked, and stop strings not matched, before this many
    # Prompt logprobs (completions' echo with logprobs): None, or k alternatives per prompt
    # token. The prompt is then computed in full, never read from the prefix cache.
    prompt_logprobs: int | None = None
    echo: bool = False  # the first output of each choice carries the prompt's text (completions' echo)

    def __post_init__(self) -> None:
        # Written so that NaN fails every range check.
        if not self.max_tokens >= 1:
            raise InvalidRequest(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidRequest(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidRequest(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.top_k >= 0:
            raise InvalidRequest(f"top_k must be >= 0, got {self.top_k}")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise InvalidRequest(f"logprobs must be in [0, {MAX_LOGPROBS}], got {self.logprobs}")
        if not all(self.stop):
            raise InvalidRequest(f"stop strings must be non-empty, got {self.stop!r}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not -MAX_PENALTY <= value <= MAX_PENALTY:
                raise InvalidRequest(f"{name} must be in [-{MAX_PENALTY}, {MAX_PENALTY}], got {value}")
        if not 0.0 < self.repetition_penalty < math.inf:
            raise InvalidRequest(f"repetition_penalty must be a positive number, got {self.repetition_penalty}")
        for token_id, bias in self.logit_bias:
            if not token_id >= 0:
                raise InvalidRequest(f"logit_bias token id must be >= 0, got {token_id}")
            if not -MAX_LOGIT_BIAS <= bias <= MAX_LOGIT_BIAS:
                raise InvalidRequest(f"logit_bias for token {token_id} must be in [-{MAX_LOGIT_BIAS}, "
                                     f"{MAX_LOGIT_BIAS}], got {bias}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise InvalidRequest(f"min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens}")
        if self.prompt_logprobs is not None and not 0 <= self.prompt_logprobs <= MAX_LOGPROBS:
            raise InvalidRequest(f"prompt_logprobs must be in [0, {MAX_LOGPROBS}], got {self.prompt_logprobs}")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def has_penalties(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0 or self.repetition_penalty != 1.0


@dataclass(frozen=True)
class LanePolicy:
    """What the gateway's lane says about how this request may be scheduled."""

    name: str = "default"
    priority: int = 0  # lower number is served first
    preemptible: bool = True
    max_seq_share: float = 1.0  # share of max_num_seqs this lane may hold while running
    max_kv_share: float = 1.0  # share of KV blocks this lane may hold
    # Share of each step's time kept for this lane while it has work (preemptible lanes
    # only): the bound on how far latency work may push bulk aside (scheduler.py).
    min_share: float = 0.0
    # Fair shares between the tenants of this lane (tenant_shares.py); False: first come,
    # first served.
    fair_tenants: bool = False

    def __post_init__(self) -> None:
        for field_name in ("max_seq_share", "max_kv_share"):
            share = getattr(self, field_name)
            if not 0.0 < share <= 1.0:  # NaN fails too
                raise InvalidRequest(f"lane {self.name}: {field_name} must be in (0, 1], got {share}")
        if not 0.0 <= self.min_share <= MAX_MIN_SHARE:
            raise InvalidRequest(f"lane {self.name}: min_share must be in [0, {MAX_MIN_SHARE}], "
                                 f"got {self.min_share}")

    @property
    def is_deferrable(self) -> bool:
        """Its work takes only the step time latency lanes leave (beyond its min_share)."""
        return self.preemptible


@dataclass(frozen=True)
class LatencyTargets:
    """What the request's endpoint promises, in seconds; None: no promise."""

    ttft_s: float | None = None
    tbt_s: float | None = None

    def __post_init__(self) -> None:
        for field_name in ("ttft_s", "tbt_s"):
            value = getattr(self, field_name)
            if value is not None and not 0.0 < value < 1e6:  # NaN fails too
                raise InvalidRequest(f"{field_name} target must be positive seconds, got {value}")


@dataclass(eq=False)
class Sequence:
    seq_id: str
    token_ids: list[int]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    lane: LanePolicy = field(default_factory=LanePolicy)
    deadline: float | None = None  # unix seconds; earlier deadlines go first within a priority
    eos_token_id: int | None = None
    targets: LatencyTargets = field(default_factory=LatencyTargets)
    # One request may ask for several choices (n samples of each of its prompts): each is
    # its own Sequence, seq_id unique, request_id the caller's, choice_index its place in
    # the answer. The samples of one prompt share its KV blocks: all but the first name
    # that first one as prompt_leader and wait for it to compute the prompt (scheduler.py).
    request_id: str = ""  # "" means seq_id
    choice_index: int = 0
    prompt_leader: Sequence | None = None
    # Constrained decoding (structured outputs, forced tool calls): the sampler masks by it,
    # append_token advances it, stopping ends the sequence when it is complete. Each choice
    # has its own matcher (its own position in the grammar).
    grammar: GrammarMatcher | None = None
    # Who the request is for, and that tenant's weight in its lane's fair shares (read only
    # where lane.fair_tenants is set; tenant_shares.py).
    tenant: str = ""
    tenant_weight: float = 1.0

    status: SeqStatus = SeqStatus.WAITING
    num_prompt_tokens: int = 0
    num_computed_tokens: int = 0
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache at the first admission
    block_table: list[int] = field(default_factory=list)
    num_preemptions: int = 0
    last_scheduled_step: int = -1  # the scheduler's step counter when this seq last got tokens
    arrival_time: float = field(default_factory=time.time)
    arrival_order: int = field(default_factory=lambda: next(_arrival_counter))
    first_scheduled_time: float | None = None
    # Set by the engine for traces and metrics (read once the sequence ends, off the engine thread).
    first_token_time: float | None = None
    finish_time: float | None = None
    num_prefill_chunks: int = 0  # steps that computed part of the prompt before the first token
    # Log-probabilities of sampled tokens, one entry per output token when requested:
    # (logprob of sampled token, [(token_id, logprob), ...] top-k alternatives).
    output_logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    # With sampling.prompt_logprobs: entry k is the logprob of prompt token k + 1 given the
    # tokens before it, and its alternatives (the first prompt token has none).
    prompt_logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    # Output plumbing owned by the engine loop: text state and where outputs go.
    detokenizer: IncrementalDetokenizer | None = None
    on_output: Callable[[RequestOutput], object] | None = None
    # The lane's pacing (seconds): after the first output, hand outputs over at most about once
    # per this, merged (workers/engine/stream_pacing.py); 0: each as it is made.
    stream_interval_s: float = 0.0
    trace_context: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.token_ids:
            raise InvalidRequest(f"request {self.seq_id}: prompt is empty")
        if self.num_prompt_tokens == 0:
            self.num_prompt_tokens = len(self.token_ids)
        if not self.request_id:
            self.request_id = self.seq_id
        if not 0.0 < self.tenant_weight < math.inf:  # NaN fails too
            raise InvalidRequest(f"request {self.seq_id}: tenant_weight must be a positive number, "
                                 f"got {self.tenant_weight}")

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return self.num_tokens - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_uncomputed_tokens(self) -> int:
        return self.num_tokens - self.num_computed_tokens

    @property
    def may_stop(self) -> bool:
        """False until min_tokens output tokens: no eos, stop token or stop string ends it yet."""
        return self.num_output_tokens >= self.sampling.min_tokens

    @property
    def is_prefill(self) -> bool:
        """True while more than the last sampled token remains to be computed."""
        return self.num_uncomputed_tokens > 1

    @property
    def priority(self) -> int:
        return self.lane.priority

    @property
    def start_deadline(self) -> float:
        """When this request should have its first token: its TTFT target from arrival, or
        its deadline, whichever is earlier (inf: neither)."""
        deadline = self.deadline if self.deadline is not None else float("inf")
        if self.targets.ttft_s is not None:
            deadline = min(deadline, self.arrival_time + self.targets.ttft_s)
        return deadline

    def sort_key(self) -> tuple[int, float, int]:
        """Priority, then earliest start deadline, then arrival (preempted seqs keep their place)."""
        return (self.lane.priority, self.start_deadline, self.arrival_order)

    def append_token(self, token_id: int) -> None:
        self.token_ids.append(token_id)
        if self.grammar is not None:
            self.grammar.accept(token_id)  # a refused token leaves it failed: stopping ends the seq

    @property
    def num_tokens_left(self) -> int:
        """Output tokens this sequence may still produce under max_tokens."""
        return self.sampling.max_tokens - self.num_output_tokens
