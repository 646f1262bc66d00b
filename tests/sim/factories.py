"""Small builders for simulator tests: sequences in a given state, scheduler outputs."""

from __future__ import annotations

from workers.engine.scheduler_output import ScheduledSeq, SchedulerOutput
from workers.engine.sequence import SamplingParams, SeqStatus, Sequence


def make_seq(seq_id: str, num_tokens: int, num_computed: int, max_tokens: int = 16) -> Sequence:
    seq = Sequence(seq_id, list(range(1, num_tokens + 1)), SamplingParams(max_tokens=max_tokens))
    seq.num_computed_tokens = num_computed
    seq.status = SeqStatus.RUNNING
    return seq


def make_output(*chunks: tuple[Sequence, int]) -> SchedulerOutput:
    return SchedulerOutput(scheduled=[ScheduledSeq(seq, n) for seq, n in chunks])
