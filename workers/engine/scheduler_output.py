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


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledSeq] = field(default_factory=list)  # decodes first, then prefills
    preempted: list[Sequence] = field(default_factory=list)
    aborted: list[Sequence] = field(default_factory=list)  # freed this step
    sat_out: list[Sequence] = field(default_factory=list)  # running, deferrable, no tokens this step
    time_budget: float = math.inf  # the step's time limit, in the cost model's units

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled
