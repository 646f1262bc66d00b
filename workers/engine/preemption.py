"""Who may preempt whom. Preemption is by recompute: the victim loses its KV blocks and
goes back to waiting with its tokens (prompt and generated) to be computed again.

Two situations, two rules:
- A RUNNING sequence that needs blocks to grow may take them from a less urgent running
  sequence (later in scheduling order): any sequence of a strictly lower priority, or a
  preemptible one of equal priority. A non-preemptible lane is never preempted by a
  lower-or-equal lane.
- A WAITING sequence may only preempt a running one of STRICTLY lower priority whose lane
  is preemptible. Never between equals, so two sequences cannot take turns evicting each
  other (no ping-pong).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from workers.engine.sequence import Sequence


def may_preempt_to_grow(victim: Sequence, seq: Sequence) -> bool:
    if victim is seq or victim.sort_key() <= seq.sort_key():
        return False
    return victim.priority > seq.priority or victim.lane.preemptible


def may_preempt_to_admit(victim: Sequence, seq: Sequence) -> bool:
    return victim is not seq and victim.priority > seq.priority and victim.lane.preemptible


def victims_in_order(
    running: Iterable[Sequence], seq: Sequence, allowed: Callable[[Sequence, Sequence], bool]
) -> list[Sequence]:
    """The running sequences seq may preempt, least urgent (first to go) first."""
    return sorted((v for v in running if allowed(v, seq)), key=Sequence.sort_key, reverse=True)
