"""The final table and JSON of `laneway load`: per endpoint, throughput beside latency.

Never one combined score: an endpoint that holds its budget and one that breaks it stay
two rows, and the generator's own send lag is printed with them so a run that could not
keep its schedule says so.
"""

from __future__ import annotations

from collections import Counter

from laneway.load.budgets import verdict
from laneway.load.open_loop import RunResult
from laneway.load.stats import EndpointSummary, percentile, summarize
from laneway.load.workload import Budget


def summaries(run: RunResult, budgets: dict[str, Budget]) -> list[EndpointSummary]:
    out = []
    for endpoint in sorted({r.endpoint for r in run.results} | set(budgets)):
        mine = [r for r in run.results if r.endpoint == endpoint]
        b = budgets.get(endpoint, Budget())
        out.append(summarize(endpoint, mine, run.elapsed_s, b.ttft_p95_ms, b.tbt_p95_ms))
    return out


def failed_share(s: EndpointSummary) -> float:
    return (s.sent - s.completed) / s.sent if s.sent else 0.0


def endpoint_verdict(s: EndpointSummary) -> str:
    return verdict(s.ttft_p95_ms, s.tbt_p95_ms, Budget(s.budget_ttft_ms, s.budget_tbt_ms), failed_share(s))


def send_lag_ms(run: RunResult) -> dict[str, float | None]:
    lags = [r.sent_at - r.scheduled_at for r in run.results]
    return {q: (None if (v := percentile(lags, p)) is None else v * 1e3)
            for q, p in (("p50", 50), ("p99", 99), ("max", 100))}


def error_counts(run: RunResult, top: int = 5) -> dict[str, dict[str, int]]:
    """Per endpoint, its most common failure messages (status and text), most frequent first."""
    out: dict[str, Counter] = {}
    for r in run.results:
        if not r.ok:
            what = f"{r.status or 'no response'}: {r.error or r.reject_reason or 'no finish reason'}"
            out.setdefault(r.endpoint, Counter())[what[:200]] += 1
    return {e: dict(c.most_common(top)) for e, c in sorted(out.items())}


def render_table(run: RunResult, rows: list[EndpointSummary]) -> str:
    lag = send_lag_ms(run)
    lines = [f"## {run.label}: {len(run.results)} requests, {run.planned_duration_s:.0f}s of arrivals, "
             f"{run.elapsed_s:.1f}s to the last response; generator send lag p50 {_ms(lag['p50'])} "
             f"p99 {_ms(lag['p99'])} max {_ms(lag['max'])} ms; load average {run.load_before[0]:.1f} before, "
             f"{run.load_after[0]:.1f} after",
             "",
             "| endpoint | sent | ok | statuses | req/s | out tok/s | TTFT p50 / p95 / p99 ms | TBT p50 / p95 ms "
             "| e2e p50 / p95 s | budget TTFT / TBT ms | verdict |",
             "|---|---:|---:|---|---:|---:|---|---|---|---|---|"]
    for s in rows:
        statuses = " ".join(f"{k}:{v}" for k, v in s.status_counts.items())
        lines.append(
            f"| {s.endpoint} | {s.sent} | {s.completed} | {statuses} | {s.completed_rps:.2f} | "
            f"{s.output_tokens_per_s:.1f} | {_ms(s.ttft_p50_ms)} / {_ms(s.ttft_p95_ms)} / {_ms(s.ttft_p99_ms)} | "
            f"{_ms(s.tbt_p50_ms)} / {_ms(s.tbt_p95_ms)} | {_s(s.e2e_p50_ms)} / {_s(s.e2e_p95_ms)} | "
            f"{_ms(s.budget_ttft_ms)} / {_ms(s.budget_tbt_ms)} | {endpoint_verdict(s)} |")
    errors = error_counts(run)
    if errors:
        lines += ["", "failures:"]
        lines += [f"- {e}: {n}x {what}" for e, whats in errors.items() for what, n in whats.items()]
    return "\n".join(lines)


def run_json(run: RunResult, rows: list[EndpointSummary], extra: dict | None = None) -> dict:
    return {"label": run.label, "num_requests": len(run.results), "elapsed_s": run.elapsed_s,
            "planned_duration_s": run.planned_duration_s, "send_lag_ms": send_lag_ms(run),
            "load_average_before": run.load_before, "load_average_after": run.load_after,
            "endpoints": [{**s.as_dict(), "verdict": endpoint_verdict(s)} for s in rows],
            "failures": error_counts(run), **(extra or {})}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}"
