"""Virtual token counters and slot shares of a fair lane on a worker (workers/engine/tenant_shares.py)."""

from __future__ import annotations

import pytest

from tests.workers.engine.factories import make_seq
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import LanePolicy, SeqStatus
from workers.engine.tenant_shares import (
    DECODE_TOKEN_COST,
    PROMPT_TOKEN_COST,
    LaneCounters,
    TenantShares,
    is_under_share,
    slot_victim,
)

FAIR = LanePolicy(name="streaming", priority=1, preemptible=False, fair_tenants=True)


def _seqs(tenant: str, n: int, prompt_len: int = 8, max_tokens: int = 4, weight: float = 1.0):
    return [make_seq(f"{tenant}{i}", prompt_len, max_tokens=max_tokens, lane=FAIR, tenant=tenant,
                     tenant_weight=weight) for i in range(n)]


def test_two_backlogs_interleave_by_tokens_not_by_requests():
    counters = LaneCounters()
    noisy = _seqs("noisy", 5, prompt_len=64, max_tokens=16)  # 64 * 0.25 + 16 = 32 tokens each
    quiet = _seqs("quiet", 4, prompt_len=16, max_tokens=4)  # 16 * 0.25 + 4 = 8 tokens each
    for seq in noisy + quiet:
        counters.arrive(seq.tenant, 1.0)
    order = [s.seq_id for s in counters.order(noisy + quiet, {})]
    # Equal counters: the tenant with fewer seqs here first; then 4 short ones per long one.
    assert order == ["quiet0", "noisy0", "quiet1", "quiet2", "quiet3", "noisy1", "noisy2", "noisy3", "noisy4"]


def test_the_least_served_tenant_goes_first_whatever_the_arrival_order():
    counters = LaneCounters()
    first, late = _seqs("a", 3), _seqs("z", 3)  # z arrives later, and sorts later by name too
    for _ in first:
        counters.arrive("a", 1.0)
    counters.charge("a", 100.0, 1.0)
    for _ in late:
        counters.arrive("z", 1.0)  # lifted to a's 100: no credit for having been away
    counters.charge("a", 100.0, 1.0)
    assert counters.counter("z") == 100.0 and counters.counter("a") == 200.0
    assert [s.seq_id for s in counters.order(first + late, {})][:2] == ["z0", "z1"]


def test_a_tie_goes_to_the_tenant_running_fewer_seqs():
    counters = LaneCounters()
    counters.arrive("a", 1.0)
    counters.charge("a", 10.0, 1.0)
    counters.arrive("b", 1.0)  # level with a
    seqs = _seqs("a", 1) + _seqs("b", 1)
    assert [s.seq_id for s in counters.order(seqs, {"a": 1})] == ["b0", "a0"]
    assert [s.seq_id for s in counters.order(seqs, {"b": 1})] == ["a0", "b0"]


def test_a_returning_tenant_is_lifted_to_the_least_served_active_tenant():
    counters = LaneCounters()
    counters.arrive("noisy", 1.0)
    counters.arrive("quiet", 1.0)
    counters.charge("quiet", 10.0, 1.0)
    counters.leave("quiet")  # idle while noisy is served
    counters.charge("noisy", 500.0, 1.0)
    counters.arrive("quiet", 1.0)
    assert counters.counter("quiet") == counters.counter("noisy") == 500.0, "idle time is not banked"


def test_with_nobody_active_a_tenant_starts_at_the_last_counter_served():
    counters = LaneCounters()
    counters.arrive("a", 1.0)
    counters.charge("a", 40.0, 1.0)
    counters.leave("a")
    counters.arrive("b", 1.0)
    assert counters.counter("b") == 40.0


def test_weight_divides_the_charge_and_idle_tenants_are_forgotten():
    shares = TenantShares()
    heavy = make_seq("h", 8, lane=FAIR, tenant="heavy", tenant_weight=2.0)
    light = make_seq("l", 8, lane=FAIR, tenant="light")
    shares.arrive(heavy)
    shares.arrive(light)
    shares.charge(heavy, 8, is_decode=False)
    shares.charge(light, 8, is_decode=False)
    shares.charge(heavy, 1, is_decode=True)
    lane = shares.lane("streaming")
    assert lane.counter("heavy") == (8 * PROMPT_TOKEN_COST + DECODE_TOKEN_COST) / 2
    assert lane.counter("light") == 8 * PROMPT_TOKEN_COST
    shares.leave(heavy)
    shares.leave(light)
    shares.arrive(make_seq("x", 8, lane=FAIR, tenant="other"))
    assert lane.counter("heavy") == 0.0 and lane.counter("light") == 0.0, "at or under the floor: dropped"


def test_fcfs_lanes_keep_no_counters():
    shares = TenantShares()
    seq = make_seq("s", 8, lane=LanePolicy(name="fcfs", priority=1, preemptible=False), tenant="a")
    shares.arrive(seq)
    shares.charge(seq, 8, is_decode=False)
    assert shares.lane("fcfs").counter("a") == 0.0


def test_a_bad_weight_is_refused_at_the_edge():
    with pytest.raises(InvalidRequest, match="tenant_weight"):
        make_seq("s", lane=FAIR, tenant="a", tenant_weight=0.0)
    with pytest.raises(InvalidRequest, match="tenant_weight"):
        make_seq("s", lane=FAIR, tenant="a", tenant_weight=float("nan"))


def _running(tenant: str, n: int):
    seqs = _seqs(tenant, n)
    for seq in seqs:
        seq.status = SeqStatus.RUNNING
    return seqs


def test_an_under_share_tenant_takes_the_newest_slot_of_the_tenant_most_over_its_share():
    noisy = _running("noisy", 8)
    quiet = make_seq("q", lane=FAIR, tenant="quiet")
    victim = slot_victim(quiet, noisy, lane_slots=8, weights={"noisy": 1.0, "quiet": 1.0})
    assert victim is noisy[-1]


def test_a_tenant_at_its_share_takes_no_slot():
    noisy, quiet = _running("noisy", 4), _running("quiet", 4)
    late = make_seq("q-late", lane=FAIR, tenant="quiet")
    assert slot_victim(late, noisy + quiet, lane_slots=8, weights={"noisy": 1.0, "quiet": 1.0}) is None


def test_uneven_shares_never_take_a_slot_back_and_forth():
    # 8 slots, 3 tenants: 2.67 each. Whoever gets the contested slot keeps it.
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    a, b, c = _running("a", 3), _running("b", 3), _running("c", 2)
    assert slot_victim(make_seq("c-new", lane=FAIR, tenant="c"), a + b + c, 8, weights) is None
    assert not is_under_share(make_seq("a-new", lane=FAIR, tenant="a"), a + b + c, 8, weights)


def test_weight_buys_a_larger_share_of_the_slots():
    weights = {"big": 3.0, "small": 1.0}
    big, small = _running("big", 2), _running("small", 2)  # 4 slots: big's share is 3, small's 1
    victim = slot_victim(make_seq("big-new", lane=FAIR, tenant="big", tenant_weight=3.0), big + small, 4, weights)
    assert victim is small[-1]
    assert slot_victim(make_seq("small-new", lane=FAIR, tenant="small"), big + small, 4, weights) is None
