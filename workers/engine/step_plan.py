"""The plan one schedule() call builds: chunks so far, budgets left, victims, pressure.

Two budgets bind every chunk: tokens (max_num_batched_tokens, what the runner's buffers
hold) and predicted time (`time_limit`, in the cost model's units). The scheduler moves
the time limit between its passes; the plan only answers "how many tokens of this seq
fit under both" and keeps the predicted shape of the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workers.engine.scheduler_output import ScheduledSeq
from workers.engine.sequence import Sequence
from workers.engine.step_shape import EMPTY_SHAPE, StepCost, StepShape


@dataclass
class StepPlan:
    """What the current schedule() call has decided so far."""

    budget: int  # tokens left this step
    cost: StepCost
    time_limit: float = math.inf  # the predicted step time may grow up to this, for now
    scheduled: dict[str, ScheduledSeq] = field(default_factory=dict)
    preempted: list[Sequence] = field(default_factory=list)
    suspended: list[Sequence] = field(default_factory=list)
    shape: StepShape = EMPTY_SHAPE
    # Tokens the next prefill chunk gets when no time is left (then 0): the most urgent
    # latency prompt always starts, however full the step is of running streams.
    urgent_grant: int = 0
    # Sort key of the most urgent seq that lacked blocks this step (a running seq that had
    # to preempt or wait, or a victim). Less urgent waiting seqs are not admitted this step:
    # blocks freed under pressure go to the seqs that lost them or wait for them first.
    pressure_key: tuple[int, float, int] | None = None

    @property
    def predicted_time(self) -> float:
        return self.cost.step_time(self.shape)

    def max_new_tokens(self, start: int, want: int) -> int:
        """Most of `want` tokens from position `start` that fit both budgets (0: none)."""
        n = min(want, self.budget)
        if n <= 0 or self._fits(start, n):
            return max(n, 0)
        lo, hi = 0, n  # largest fitting count in [lo, hi): the predicted time grows with it
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._fits(start, mid):
                lo = mid
            else:
                hi = mid
        return lo if lo > 0 or want == 1 else min(self.urgent_grant, n)

    def _fits(self, start: int, num_tokens: int) -> bool:
        return self.cost.step_time(self.shape + StepShape.chunk(start, num_tokens)) <= self.time_limit

    def add(self, seq: Sequence, num_new_tokens: int) -> None:
        assert 0 < num_new_tokens <= self.budget, f"{num_new_tokens} tokens over budget {self.budget}"
        assert seq.seq_id not in self.scheduled, f"{seq.seq_id} scheduled twice"
        self.scheduled[seq.seq_id] = ScheduledSeq(seq=seq, num_new_tokens=num_new_tokens)
        self.budget -= num_new_tokens
        self.shape = self.shape + StepShape.chunk(seq.num_computed_tokens, num_new_tokens)
        if seq.num_uncomputed_tokens > 1:
            self.urgent_grant = 0  # a prefill chunk got its start

    def drop(self, seq: Sequence) -> None:
        """Take back a preempted seq's tokens, if it was already scheduled this step."""
        dropped = self.scheduled.pop(seq.seq_id, None)
        if dropped is not None:
            self.budget += dropped.num_new_tokens
            self.shape = sum((StepShape.chunk(s.start, s.num_new_tokens) for s in self.scheduled.values()),
                             EMPTY_SHAPE)

    def note_pressure(self, key: tuple[int, float, int]) -> None:
        """`key`: the scheduling key (the scheduler's order this step) of a seq that lacked blocks."""
        if self.pressure_key is None or key < self.pressure_key:
            self.pressure_key = key
