"""A workload as one worker sees it: lanes from the policy, requests for the simulator,
means for the chain.

Lanes come from `lanes.classify`, as the gateway decides them: priority, preemption,
capacity shares, the lane's deadline, and its batch window as a delay before the worker
sees the request (a fixed window, or an adaptive window's minimum). Endpoints the policy
does not name (or no policy) get the default lane and no window. Spreading over N
workers sends each request to a random one (the gateway's least-loaded dispatch does at
least as well), so each sees rate / N and a burst of k arrives as about k / N.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lanes.classify import RequestFeatures, classify
from lanes.policy import Policy
from laneway.load.workload import EndpointWorkload, Workload
from laneway.plan.chain import EndpointMix
from workers.engine.sequence import LanePolicy
from workers.sim.virtual_worker import SimRequest


@dataclass(frozen=True)
class LaneFacts:
    lane: LanePolicy
    dispatch_delay_s: float
    max_queue_wait_s: float | None


def lane_facts(endpoint: EndpointWorkload, policy: Policy | None, prompt_tokens: int, max_tokens: int) -> LaneFacts:
    if policy is None or endpoint.name not in policy.endpoints:
        return LaneFacts(LanePolicy(), 0.0, None)
    decision = classify(RequestFeatures(endpoint=endpoint.name, stream=endpoint.stream, tenant="plan",
                                        prompt_tokens=prompt_tokens, max_tokens=max_tokens), policy)
    spec = decision.lane
    lane = LanePolicy(name=decision.lane_name, priority=spec.priority, preemptible=spec.preemptible,
                      max_seq_share=spec.capacity_share.seqs, max_kv_share=spec.capacity_share.kv)
    return LaneFacts(lane, spec.batch_window.min_ms / 1000.0, spec.max_queue_wait_ms / 1000.0)


def sim_requests(workload: Workload, policy: Policy | None, num_workers: int = 1, worker: int = 0
                 ) -> list[SimRequest]:
    """One worker's share of the workload's requests: each request goes to a worker drawn at
    random (seeded), so Poisson traffic stays Poisson at rate / N and a burst splits."""
    rng = random.Random(f"{workload.seed}/dispatch/{num_workers}")
    plan = [r for r in workload.requests() if rng.randrange(num_workers) == worker]
    out = []
    for r in plan:
        e = workload.endpoint(r.endpoint)
        facts = lane_facts(e, policy, r.prompt_tokens, r.max_tokens)
        out.append(SimRequest(r.at_s, r.endpoint, r.prompt_tokens, r.max_tokens, facts.lane, facts.dispatch_delay_s,
                              facts.max_queue_wait_s, prefix_key=r.endpoint if r.shared_prefix_tokens else None,
                              prefix_tokens=r.shared_prefix_tokens))
    return out


def chain_mix(workload: Workload, policy: Policy | None, num_workers: int = 1) -> list[EndpointMix]:
    """Per-endpoint means for the closed-form chain (trace endpoints: means of their lines)."""
    mix = []
    for e in workload.endpoints:
        if e.prompt_tokens is not None and e.output_tokens is not None:
            prompt, out = e.prompt_tokens.mean, e.output_tokens.mean
        else:
            lines = e.arrival.lines  # type: ignore[union-attr]  # trace arrivals carry their lengths
            prompt = sum(x.prompt_tokens for x in lines) / len(lines)
            out = sum(x.max_tokens for x in lines) / len(lines)
        cached = 0.0
        if e.shared_prefix is not None:
            cached = e.shared_prefix.share * min(e.shared_prefix.tokens, prompt - 1)
        facts = lane_facts(e, policy, round(prompt), round(out))
        mix.append(EndpointMix(e.name, e.arrival.mean_rate / num_workers, prompt, cached, out, facts.dispatch_delay_s))
    return mix
