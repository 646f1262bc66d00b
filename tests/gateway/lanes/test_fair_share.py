"""Virtual token counters: the pure rule behind fair queuing between tenants in a lane."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.lanes_runtime.fair_share import OUTPUT_TOKEN_COST, PROMPT_TOKEN_COST, JobCost, VirtualCounters


def test_cost_weighs_prompt_and_output_tokens_and_refunds_what_was_not_generated():
    cost = JobCost(prompt_tokens=400, max_output_tokens=100)
    assert cost.charged == 400 * PROMPT_TOKEN_COST + 100 * OUTPUT_TOKEN_COST
    assert cost.refund(30) == 70 * OUTPUT_TOKEN_COST
    assert cost.refund(500) == 0.0  # never more than was charged


def test_the_tenant_served_least_goes_next_and_weight_divides_its_cost():
    vtc = VirtualCounters()
    for tenant in ("a", "b"):
        vtc.arrive(tenant)
    vtc.charge("a", 100, weight=1.0)
    vtc.charge("b", 100, weight=4.0)
    assert vtc.counter("a") == 100 and vtc.counter("b") == 25
    assert vtc.pick(["a", "b"]) == "b"
    assert vtc.pick(["a"]) == "a"  # only the candidates count (b at a cap)
    assert vtc.pick([]) is None
    with pytest.raises(ValueError):
        vtc.charge("a", 1, weight=0.0)


def test_a_newcomer_is_lifted_to_the_least_served_active_tenant():
    vtc = VirtualCounters()
    vtc.arrive("noisy")
    vtc.arrive("other")
    vtc.charge("noisy", 5000, 1.0)
    vtc.charge("other", 3000, 1.0)
    vtc.arrive("quiet")  # idle all along: it starts level with the least served, not at 0
    assert vtc.counter("quiet") == 3000
    vtc.leave("quiet")
    vtc.charge("other", 4000, 1.0)
    vtc.arrive("quiet")  # back after a pause: no credit banked while away
    assert vtc.counter("quiet") == 5000


def test_with_nobody_active_a_returning_tenant_starts_at_the_last_counter_served():
    vtc = VirtualCounters()
    vtc.arrive("noisy")
    vtc.charge("noisy", 9000, 1.0)
    vtc.leave("noisy")
    vtc.arrive("quiet")
    assert vtc.counter("quiet") == 9000
    assert not vtc.is_active("noisy") and vtc.is_active("quiet")


@settings(max_examples=200, deadline=None)
@given(costs_a=st.lists(st.integers(1, 500), min_size=50, max_size=50),
       costs_b=st.lists(st.integers(1, 500), min_size=50, max_size=50),
       weight_b=st.sampled_from([1.0, 2.0, 3.0]))
def test_two_backlogged_tenants_are_served_in_proportion_to_their_weights(costs_a, costs_b, weight_b):
    """VTC's bound: while both stay backlogged, their counters never drift apart by more than
    one job's cost (over the weight) plus the largest job; so served tokens follow the weights."""
    vtc = VirtualCounters()
    queues = {"a": list(costs_a), "b": list(costs_b)}
    weights = {"a": 1.0, "b": weight_b}
    served = {"a": 0, "b": 0}
    for tenant in queues:
        for _ in queues[tenant]:
            vtc.arrive(tenant)
    while queues["a"] and queues["b"]:
        tenant = vtc.pick([t for t in queues if queues[t]])
        assert tenant is not None
        cost = queues[tenant].pop(0)
        vtc.charge(tenant, cost, weights[tenant])
        served[tenant] += cost
        assert abs(vtc.counter("a") - vtc.counter("b")) <= 500.0, "counters drifted apart"
    # Service divided by weight stays within one largest job of each other.
    assert abs(served["a"] / weights["a"] - served["b"] / weights["b"]) <= 500.0 * 2
