"""What one forward pass has to do, reduced to the numbers that decide its time.

A pass over a SchedulerOutput computes `num_tokens` new tokens for `num_seqs` sequences.
Every sequence reads its own K/V once per layer (`kv_tokens_read`: its context up to the
end of this chunk), and every new token attends to the tokens before it
(`attention_pairs`: query-key pairs, causal). These four numbers feed every cost model
(roofline presets, calibrated linear fits) and are all the simulator knows of a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from workers.engine.scheduler_output import SchedulerOutput


@dataclass(frozen=True)
class StepShape:
    num_seqs: int
    num_tokens: int  # new tokens computed: decodes count 1, prefill chunks their length
    kv_tokens_read: int  # sum over seqs of the context each one's attention reads
    attention_pairs: int  # sum over new tokens of the positions each attends to

    def __add__(self, other: StepShape) -> StepShape:
        """Two groups of sequences in one pass (decodes plus a prefill chunk)."""
        return StepShape(self.num_seqs + other.num_seqs, self.num_tokens + other.num_tokens,
                         self.kv_tokens_read + other.kv_tokens_read, self.attention_pairs + other.attention_pairs)

    @classmethod
    def decode(cls, batch_size: int, context: int) -> StepShape:
        """B sequences each generating one token after `context` tokens."""
        return cls(batch_size, batch_size, batch_size * (context + 1), batch_size * (context + 1))

    @classmethod
    def prefill(cls, num_tokens: int, context: int = 0) -> StepShape:
        """One chunk of `num_tokens` after `context` tokens already in the cache."""
        return cls.chunk(context, num_tokens)

    @classmethod
    def chunk(cls, start: int, num_tokens: int) -> StepShape:
        """One sequence computing tokens [start, start + num_tokens): a decode is a chunk of 1."""
        end = start + num_tokens
        return cls(1, num_tokens, end, _pairs(start, end))


EMPTY_SHAPE = StepShape(0, 0, 0, 0)


def shape_of(out: SchedulerOutput) -> StepShape:
    """Read before postprocess: chunk bounds move with num_computed_tokens."""
    num_tokens = kv = pairs = 0
    for s in out.scheduled:
        start, end = s.start, s.end
        num_tokens += end - start
        kv += end
        pairs += _pairs(start, end)
    return StepShape(len(out.scheduled), num_tokens, kv, pairs)


def _pairs(start: int, end: int) -> int:
    # Token at position p attends to positions 0..p: p + 1 keys. Sum for p in [start, end).
    return (end * (end + 1) - start * (start + 1)) // 2


class StepCost(Protocol):
    """Seconds one forward pass of this shape takes (the model's share of an engine step)."""

    def step_time(self, shape: StepShape) -> float: ...

    def describe(self) -> str: ...


class TokenCount:
    """The cost model of an engine with no step-time model: a step costs its tokens. The
    scheduler's time rules then read as token rules (shares of the token budget)."""

    def step_time(self, shape: StepShape) -> float:
        return float(shape.num_tokens)

    def describe(self) -> str:
        return "tokens per step (no step-time model)"
