"""The plan one schedule() call builds: chunks so far, budget left, victims, pressure."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.engine.scheduler_output import ScheduledSeq
from workers.engine.sequence import Sequence


@dataclass
class StepPlan:
    """What the current schedule() call has decided so far."""

    budget: int
    scheduled: dict[str, ScheduledSeq] = field(default_factory=dict)
    preempted: list[Sequence] = field(default_factory=list)
    # Sort key of the most urgent seq that lacked blocks this step (a running seq that had
    # to preempt or wait, or a victim). Less urgent waiting seqs are not admitted this step:
    # blocks freed under pressure go to the seqs that lost them or wait for them first.
    pressure_key: tuple[int, float, int] | None = None

    def add(self, seq: Sequence, num_new_tokens: int) -> None:
        assert 0 < num_new_tokens <= self.budget, f"{num_new_tokens} tokens over budget {self.budget}"
        assert seq.seq_id not in self.scheduled, f"{seq.seq_id} scheduled twice"
        self.scheduled[seq.seq_id] = ScheduledSeq(seq=seq, num_new_tokens=num_new_tokens)
        self.budget -= num_new_tokens

    def drop(self, seq: Sequence) -> None:
        """Take back a preempted seq's tokens, if it was already scheduled this step."""
        dropped = self.scheduled.pop(seq.seq_id, None)
        if dropped is not None:
            self.budget += dropped.num_new_tokens

    def note_pressure(self, seq: Sequence) -> None:
        key = seq.sort_key()
        if self.pressure_key is None or key < self.pressure_key:
            self.pressure_key = key
