"""The two preemption rules as a table: growth of a running seq, admission of a waiting one."""

from __future__ import annotations

import pytest

from tests.workers.engine.factories import make_seq
from workers.engine.preemption import may_preempt_to_admit, may_preempt_to_grow, victims_in_order
from workers.engine.sequence import LanePolicy

P0 = LanePolicy(name="p0", priority=0, preemptible=False)
P1_FIXED = LanePolicy(name="p1-fixed", priority=1, preemptible=False)
P1_SOFT = LanePolicy(name="p1-soft", priority=1, preemptible=True)
P2_SOFT = LanePolicy(name="p2-soft", priority=2, preemptible=True)


@pytest.mark.parametrize(
    ("seq_lane", "victim_lane", "victim_is_later", "to_grow", "to_admit"),
    [
        (P0, P2_SOFT, True, True, True),  # strictly lower and preemptible: always
        (P0, P1_FIXED, True, True, False),  # lower but non-preemptible: only to grow
        (P1_SOFT, P1_SOFT, True, True, False),  # equals: a later one yields to grow, never to admit
        (P1_SOFT, P1_SOFT, False, False, False),  # never an earlier equal
        (P1_FIXED, P1_FIXED, True, False, False),  # non-preemptible equals: never
        (P1_SOFT, P1_FIXED, True, False, False),
        (P2_SOFT, P0, True, False, False),  # never a more urgent lane
        (P1_SOFT, P0, False, False, False),
    ],
)
def test_rules(
    seq_lane: LanePolicy, victim_lane: LanePolicy, victim_is_later: bool, to_grow: bool, to_admit: bool
) -> None:
    if victim_is_later:
        seq, victim = make_seq(lane=seq_lane), make_seq(lane=victim_lane)
    else:
        victim, seq = make_seq(lane=victim_lane), make_seq(lane=seq_lane)
    assert may_preempt_to_grow(victim, seq) == to_grow
    assert may_preempt_to_admit(victim, seq) == to_admit


def test_nobody_preempts_itself_by_rule() -> None:
    seq = make_seq(lane=P2_SOFT)
    assert not may_preempt_to_grow(seq, seq) and not may_preempt_to_admit(seq, seq)


def test_victims_come_least_urgent_first() -> None:
    seq = make_seq(lane=P0)
    a = make_seq(lane=P1_SOFT)
    b = make_seq(lane=P2_SOFT)
    c = make_seq(lane=P2_SOFT, deadline=5.0)
    assert victims_in_order([seq, a, b, c], seq, may_preempt_to_admit) == [b, c, a]
