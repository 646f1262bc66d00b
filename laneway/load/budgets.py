"""Each endpoint's latency budget: from the workload file's `slo`, else from a policy.

The workload's own `slo` wins because it is what this test sets out to check; a policy
(`--policy`) supplies the product's promises for Laneway endpoint names it defines.
"""

from __future__ import annotations

from pathlib import Path

from laneway.load.workload import Budget, Workload


def endpoint_budgets(workload: Workload, policy_path: Path | None = None) -> dict[str, Budget]:
    from_policy: dict[str, Budget] = {}
    if policy_path is not None:
        from lanes.policy import load_policy

        policy = load_policy(policy_path)
        for name, spec in policy.endpoints.items():
            from_policy[name] = Budget(spec.slo.ttft_p95_ms, spec.slo.tbt_p95_ms)
    return {e.name: e.budget if e.budget.is_set else from_policy.get(e.name, Budget()) for e in workload.endpoints}


def verdict(ttft_p95_ms: float | None, tbt_p95_ms: float | None, budget: Budget, failed_share: float = 0.0,
            max_failed_share: float = 0.01) -> str:
    """'holds', 'no budget', or 'BREAKS: <first reason>'. Failures (errors and refusals) over
    `max_failed_share` break a budget too: a request not served met no latency promise."""
    reasons = []
    if budget.ttft_p95_ms is not None and (ttft_p95_ms is None or ttft_p95_ms > budget.ttft_p95_ms):
        reasons.append(f"TTFT p95 {_fmt(ttft_p95_ms)} > {budget.ttft_p95_ms:.0f} ms")
    if budget.tbt_p95_ms is not None and tbt_p95_ms is not None and tbt_p95_ms > budget.tbt_p95_ms:
        reasons.append(f"TBT p95 {_fmt(tbt_p95_ms)} > {budget.tbt_p95_ms:.0f} ms")
    if failed_share > max_failed_share:
        reasons.append(f"{failed_share:.1%} not served")
    if reasons:
        return "BREAKS: " + "; ".join(reasons)
    return "holds" if budget.is_set else "no budget"


def _fmt(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.0f}"
