"""Sharing a gateway's free batch slots: weighted round robin over tenants, then batches."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.batches.fair_claim import Claimable, share_slots


def test_a_new_batch_gets_the_freed_slots_while_a_huge_one_holds_its_share():
    huge = Claimable("batch-huge", "alpha", 1.0, num_unanswered=5000, num_running=7)
    small = Claimable("batch-small", "beta", 1.0, num_unanswered=10, num_running=0)
    assert share_slots([huge, small], free_slots=1) == {"batch-small": 1}
    assert share_slots([huge, small], free_slots=9) == {"batch-small": 8, "batch-huge": 1}


def test_weights_split_the_slots_and_batches_of_one_tenant_share_its_part():
    batches = [Claimable("b1", "alpha", 1.0, 100, 0), Claimable("b2", "beta", 3.0, 100, 0),
               Claimable("b3", "beta", 3.0, 100, 0)]
    grants = share_slots(batches, free_slots=8, rng=random.Random(1))
    assert grants["b1"] == 2 and grants["b2"] + grants["b3"] == 6 and abs(grants["b2"] - grants["b3"]) <= 1


def test_no_batch_id_is_always_first_on_a_tie():
    batches = [Claimable(f"batch_{i}", f"t{i}", 1.0, 100, 0) for i in range(4)]
    winners = {next(iter(share_slots(batches, 1, rng=random.Random(seed)))) for seed in range(50)}
    assert winners == {b.batch_id for b in batches}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 30), st.integers(0, 10)), max_size=6),
       st.integers(0, 40))
def test_grants_fit_the_free_slots_and_each_batch_s_unanswered_lines(specs, free):
    batches = [Claimable(f"b{i}", t, {"a": 1.0, "b": 2.0, "c": 0.5}[t], n + r, r)
               for i, (t, n, r) in enumerate(specs)]
    grants = share_slots(batches, free, rng=random.Random(0))
    assert sum(grants.values()) == min(free, sum(b.num_unanswered - b.num_running for b in batches))
    for b in batches:
        assert b.num_running + grants.get(b.batch_id, 0) <= b.num_unanswered
