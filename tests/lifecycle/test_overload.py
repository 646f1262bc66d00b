"""Overload at 3x capacity, bounded (~20 s): the interactive lane keeps its budget by refusing.

The shared worker has two sequence slots, so capacity is small and 3x of it is cheap to
generate. The phases and the checks are scripts/overload.py's (which runs them for a full
minute): capacity (closed loop), 3x of it open loop, a pause, half of it. What must hold,
as ratios against the policy and never as absolute times:
- admitted interactive requests' p95 TTFT is within the endpoint's ttft_p95_ms;
- the excess is refused with 429 at a small fraction of the budget (a refusal is useful
  only if it comes early enough for the client to go elsewhere);
- nothing else fails: no 5xx, no connection errors, no hangs;
- the gateway's RSS stays under 2x what it was before the overload;
- after the load drops, every request succeeds within budget again.
"""

from __future__ import annotations

import asyncio

import pytest

from lanes.policy_load import parse_policy
from scripts.overload import Target, run_overload
from tests.lifecycle.conftest import POLICY, Cluster

pytestmark = pytest.mark.integration

ENDPOINT = "inline"
BUDGET_MS = parse_policy(POLICY, "lifecycle policy").endpoints[ENDPOINT].slo.ttft_p95_ms
BODY = {"prompt": "def handler(request):", "max_tokens": 48, "ignore_eos": True}


def test_three_times_capacity_keeps_admitted_ttft_in_budget_and_refuses_the_excess(cluster: Cluster) -> None:
    assert cluster.gateway.popen is not None and BUDGET_MS is not None
    target = Target(ENDPOINT, f"{cluster.base}/v1/endpoints/{ENDPOINT}/completions", BODY)
    run = asyncio.run(run_overload(target, budget_ms=BUDGET_MS, overload_s=6.0, recovery_s=3.0,
                                   gateway_pid=cluster.gateway.popen.pid))
    report = f"tried: 3x then 0.5x the measured capacity of one 2-slot tiny worker on {ENDPOINT!r}\n{run.report()}"
    print(report)
    assert not run.failures, f"{report}\n{cluster.logs()}"
    assert run.hot.reject_reasons.get("budget", 0) > 0, "3x capacity must be refused for its budget, not queued"
