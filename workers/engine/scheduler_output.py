"""Small result types at the scheduler/model-runner boundary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workers.engine.sequence import Sequence


@dataclass(frozen=True)
class ScheduledSeq:
    """Compute tokens [seq.num_computed_tokens, +num_new_tokens) of `seq` this step."""

    seq: Sequence
    num_new_tokens: int

    @property
    def start(self) -> int:
        return self.seq.num_computed_tokens

    @property
    def end(self) -> int:
        return self.seq.num_computed_tokens + self.num_new_tokens

    @property
    def needs_sample(self) -> bool:
        """The chunk reaches the last known token, so its logits give the next token."""
        return self.end == self.seq.num_tokens


@dataclass(frozen=True)
class PromptLogitSpan:
    """Positions [start, end) of scheduled row `row` whose logits give prompt logprobs: the
    logits at position p predict prompt token p + 1."""

    row: int  # index into SchedulerOutput.scheduled
    seq: Sequence
    start: int
    end: int


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledSeq] = field(default_factory=list)  # decodes first, then prefills
    preempted: list[Sequence] = field(default_factory=list)
    # Set aside this step, KV kept (fair lanes); one may since have been preempted in the same step.
    suspended: list[Sequence] = field(default_factory=list)
    aborted: list[Sequence] = field(default_factory=list)  # freed this step
    sat_out: list[Sequence] = field(default_factory=list)  # running, deferrable, no tokens this step
    time_budget: float = math.inf  # the step's time limit, in the cost model's units

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled

    def prompt_logit_spans(self) -> list[PromptLogitSpan]:
        """The prompt positions of this step whose logits the runner returns after the sample
        rows (Runner.run): for each seq that asks for prompt logprobs, those it computes now
        and has no logprob for yet (a recompute after preemption asks for none twice).
        Call it before advancing num_computed_tokens, like needs_sample."""
        spans = []
        for row, s in enumerate(self.scheduled):
            seq = s.seq
            if seq.sampling.prompt_logprobs is None:
                continue
            start = max(s.start, len(seq.prompt_logprobs))
            end = min(s.end, seq.num_prompt_tokens - 1)
            if start < end:
                spans.append(PromptLogitSpan(row, seq, start, end))
        return spans

    def num_prompt_logit_rows(self) -> int:
        return sum(span.end - span.start for span in self.prompt_logit_spans())
