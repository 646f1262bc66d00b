"""gateway/wire.py: what the worker is told about a job, and what the gateway reads of a load report;
a malformed job is refused explicitly, not by an assert."""

from __future__ import annotations

import math

import pytest

from gateway.job import Job, LaneTicket, LatencyTargets, Sampling
from gateway.wire import from_load, to_request
from laneway_proto import worker_pb2 as pb
from tests.gateway.lanes.factories import make_job, make_policy


def test_a_request_carries_its_endpoints_targets_and_its_lanes_min_share():
    policy = make_policy(lanes={"bulk": {"min_share": 0.1}})
    job = make_job(policy, now=1_700_000_000.0, endpoint="nightly")
    job.targets = LatencyTargets(ttft_ms=1500.0, tbt_ms=250.0)
    req = to_request(job)
    assert job.lane == LaneTicket.for_lane("bulk", policy.lanes["bulk"])
    assert (req.lane.name, req.lane.preemptible) == ("bulk", True)
    assert req.lane.min_share == pytest.approx(0.1)  # a proto float: 32 bits
    assert (req.targets.ttft_ms, req.targets.tbt_ms) == (1500.0, 250.0)


def test_a_request_carries_its_tenant_its_weight_and_its_lanes_fairness():
    policy = make_policy(lanes={"bulk": {"fairness": "fcfs"}})
    job = make_job(policy, now=1_700_000_000.0, endpoint="chat", tenant="acme")
    job.tenant_weight = 2.5
    req = to_request(job)
    assert (req.tenant, req.tenant_weight, req.lane.fair_tenants) == ("acme", 2.5, True)
    bulk = to_request(make_job(policy, now=1_700_000_000.0, endpoint="nightly", tenant="acme"))
    assert (bulk.tenant, bulk.tenant_weight, bulk.lane.fair_tenants) == ("acme", 1.0, False)


def test_a_request_carries_its_lanes_stream_interval():
    policy = make_policy(lanes={"streaming": {"stream_interval_ms": 25.0}})
    assert to_request(make_job(policy, now=1_700_000_000.0, endpoint="chat")).lane.stream_interval_ms == 25.0
    assert to_request(make_job(policy, now=1_700_000_000.0, endpoint="inline")).lane.stream_interval_ms == 0.0


def test_no_target_is_sent_as_zero():
    job = make_job(make_policy(), now=1_700_000_000.0, endpoint="inline")
    job.targets = LatencyTargets(ttft_ms=300.0)
    req = to_request(job)
    assert (req.targets.ttft_ms, req.targets.tbt_ms, req.lane.min_share) == (300.0, 0.0, 0.0)


def test_the_load_report_by_lane_and_the_bulk_headroom_are_read():
    report = pb.LoadReport(
        num_running=5, num_waiting=40, max_num_seqs=64, step_time_budget_ms=160.0, num_bulk_slots=3,
        lanes=[pb.LaneLoad(name="interactive", priority=0, preemptible=False, num_waiting=2, predicted_wait_ms=80.0),
               pb.LaneLoad(name="bulk", priority=2, preemptible=True, num_running=3, num_waiting=38,
                           num_queued_prefill_tokens=22_800, predicted_wait_ms=41_000.0)])
    load = from_load(report)
    assert load.has_step_budget and load.num_bulk_slots == 3
    assert [(lane.name, lane.preemptible, lane.predicted_wait_ms) for lane in load.lanes] == [
        ("interactive", False, 80.0), ("bulk", True, 41_000.0)]
    assert load.lanes[1].num_queued_prefill_tokens == 22_800


def test_an_older_worker_reports_no_lanes_and_no_step_budget():
    load = from_load(pb.LoadReport(num_running=1, max_num_seqs=8))
    assert (load.lanes, load.has_step_budget, load.num_bulk_slots) == ((), False, 0)


def test_a_nonsense_wait_reads_as_none():
    report = pb.LoadReport(step_time_budget_ms=math.nan, lanes=[pb.LaneLoad(name="x", predicted_wait_ms=-5.0)])
    load = from_load(report)
    assert (load.step_time_budget_ms, load.lanes[0].predicted_wait_ms) == (0.0, 0.0)


def _job(kind: str, prompt) -> Job:
    return Job(endpoint="chat", tenant="anonymous", kind=kind, prompt=prompt,  # type: ignore[arg-type]
               sampling=Sampling(max_tokens=4), lane=LaneTicket("interactive", 0, False), stream=False,
               prompt_tokens_estimate=1)


def test_chat_messages_become_a_chat_prompt() -> None:
    req = to_request(_job("chat", [{"role": "user", "content": "hi"}]))
    assert [(m.role, m.content) for m in req.chat.messages] == [("user", "hi")]


def test_a_chat_job_whose_prompt_is_not_messages_is_refused() -> None:
    with pytest.raises(TypeError, match="a chat job's prompt is a list of messages"):
        to_request(_job("chat", "just text"))


def test_defaults_are_flagged_on_the_wire() -> None:
    job = _job("completion", "hi")
    job.sampling = Sampling(max_tokens=16, max_tokens_is_default=True, top_p_is_default=True)
    sp = to_request(job).sampling
    assert (sp.max_tokens, sp.max_tokens_is_default, sp.top_p_is_default) == (16, True, True)
    assert not sp.temperature_is_default and not sp.top_k_is_default
    assert not to_request(_job("completion", "hi")).sampling.max_tokens_is_default
