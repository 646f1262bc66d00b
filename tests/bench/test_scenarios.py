"""`laneway bench lanes` scenarios: which runs, and traces that differ only by the burst."""

from __future__ import annotations

import pytest

from laneway.bench.scenarios import BULK, INTERACTIVE, STREAMING, Burst, burst_trace, scenario, steady_trace, with_burst
from laneway.procs import ROOT


def test_backlog_scenarios_compare_lanes_with_and_without_and_fcfs_with():
    sc = scenario("backlog-start", 60.0)
    assert [(r.name, r.policy_file, r.with_burst) for r in sc.runs] == [
        ("lanes", "lanes-backlog.yaml", False),
        ("lanes+backlog", "lanes-backlog.yaml", True),
        ("global-fcfs+backlog", "global-fcfs.yaml", True),
    ]
    assert sc.burst == Burst(32, 600, 256, 0.0)
    for plan in sc.runs:
        assert (ROOT / "policies" / "bench" / plan.policy_file).is_file()


def test_the_mid_run_burst_lands_20s_in_or_a_third_into_a_short_run():
    assert scenario("backlog-mid", 60.0).burst.at_s == 20.0
    assert scenario("backlog-mid", 10.0).burst.at_s == pytest.approx(10.0 / 3)
    assert scenario("backlog-mid", 60.0, Burst(at_s=5.0)).burst.at_s == 5.0, "an explicit time is kept"


@pytest.mark.parametrize("bad", [Burst(at_s=60.0), Burst(at_s=-1.0), Burst(num_requests=0)])
def test_a_burst_that_cannot_land_in_the_run_is_refused(bad: Burst):
    with pytest.raises(ValueError):
        scenario("backlog-start", 60.0, bad)


def test_steady_keeps_its_four_policies_and_its_mixed_trace():
    sc = scenario("steady", 60.0)
    assert [r.name for r in sc.runs] == ["lanes", "global-fcfs", "global-long-window", "lanes-adaptive"]
    assert sc.burst is None and not any(r.with_burst for r in sc.runs)
    assert {a.endpoint for a in steady_trace(sc, 60.0, 1.0, seed=7)} == {INTERACTIVE, STREAMING, BULK}


def test_the_backlog_trace_is_the_steady_trace_plus_the_burst():
    sc = scenario("backlog-mid", 60.0)
    steady = steady_trace(sc, 60.0, 1.0, seed=7)
    assert steady == steady_trace(sc, 60.0, 1.0, seed=7), "seeded: every run replays the same arrivals"
    assert {a.endpoint for a in steady} == {INTERACTIVE, STREAMING}, "the burst is all the bulk work"
    burst = burst_trace(sc.burst, seed=7)
    loaded = with_burst(steady, burst)
    assert [a for a in loaded if a.endpoint != BULK] == steady
    assert [a for a in loaded if a.endpoint == BULK] == burst
    assert [a.at_s for a in loaded] == sorted(a.at_s for a in loaded)


def test_the_burst_is_distinct_long_prompts_all_at_once():
    burst = burst_trace(Burst(num_requests=32, prompt_tokens=600, output_tokens=256, at_s=20.0), seed=7)
    assert len(burst) == 32 and {a.at_s for a in burst} == {20.0}
    assert {len(a.prompt) for a in burst} == {600} and {a.max_tokens for a in burst} == {256}
    # Unique from their first block on: no prompt is served from another's prefix cache.
    assert len({a.prompt[:16] for a in burst}) == 32
