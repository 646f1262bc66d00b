"""Overload: offer 3x a gateway's measured capacity, then half of it, and check it held.

    python scripts/overload.py                    # starts a tiny worker (2 slots) + gateway itself
    python scripts/overload.py --url http://127.0.0.1:8000 --endpoint inline-completion \
        --budget-ms 300 --gateway-pid 1234        # against a running gateway

Phases: capacity (closed loop, 2x the worker's slots in flight), overload (open loop,
Poisson arrivals at 3x capacity, --duration seconds, default 60), a pause, recovery (0.5x
capacity). It passes (exit 0) when, under overload, admitted requests' p95 TTFT is within
the endpoint budget, the excess is refused with 429 at a small fraction of the budget,
nothing else fails, the gateway's RSS stays under 2x, and in recovery every request
succeeds within budget. tests/lifecycle/test_overload.py runs the same phases for ~15 s
and imports the helpers below; scripts/soak.py reuses them at 80% for ten minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

import httpx  # noqa: E402

from laneway.load.client import RequestResult, stream_request  # noqa: E402
from laneway.load.stats import percentile  # noqa: E402

DEMO_POLICY = """\
version: 1
default_endpoint: inline
auth: {required: false}
lanes:
  interactive: {priority: 0, batch_window_ms: 2, max_batch_size: 8, max_queue_depth: 64, max_queue_wait_ms: 500}
  streaming: {priority: 1, batch_window_ms: 5, max_batch_size: 16, max_queue_depth: 256, max_queue_wait_ms: 2000}
endpoints:
  inline: {lane: interactive, slo: {ttft_p95_ms: 2000}, limits: {max_tokens: 64}}
  chat: {lane: streaming, slo: {ttft_p95_ms: 4000}, limits: {max_tokens: 256}}
"""
DEMO_BODY = {"prompt": "def handler(request):", "max_tokens": 48, "ignore_eos": True}


@dataclass(frozen=True)
class Target:
    endpoint: str
    url: str  # the completions URL
    body: dict
    weight: float = 1.0  # share of the arrivals (open loop with several targets)


@dataclass
class PhaseSummary:
    name: str
    num_sent: int
    statuses: Counter
    reject_reasons: Counter
    num_errors: int  # connection errors, timeouts, broken streams, 5xx: never acceptable
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    refusal_p50_ms: float | None
    refusal_p95_ms: float | None
    budget_ms: float | None  # the endpoint's ttft_p95_ms, when the phase is judged against one
    errors: list[str] = field(default_factory=list)

    @property
    def error_kinds(self) -> Counter:
        """Failures by kind: the status and the error's first words (ReadTimeout, RemoteProtocolError...)."""
        return Counter(":".join(e.split(":")[:2]) for e in self.errors)

    def __str__(self) -> str:
        return (f"{self.name}: {self.num_sent} sent, statuses {dict(self.statuses)}, refusals "
                f"{dict(self.reject_reasons)}, errors {self.num_errors}; admitted TTFT p50 {_fmt(self.ttft_p50_ms)} "
                f"p95 {_fmt(self.ttft_p95_ms)}{'' if self.budget_ms is None else f' (budget {self.budget_ms:.0f} ms)'}"
                f"; refusal latency p50 "
                f"{_fmt(self.refusal_p50_ms)} p95 {_fmt(self.refusal_p95_ms)}"
                + (f"; errors by kind: {dict(self.error_kinds)}" if self.errors else ""))


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


async def closed_loop_capacity(client: httpx.AsyncClient, target: Target, *, concurrency: int,
                               duration_s: float) -> float:
    """Completed requests per second with `concurrency` always in flight: the service rate."""
    t0 = time.perf_counter()
    num_ok = 0

    async def user() -> None:
        nonlocal num_ok
        while time.perf_counter() - t0 < duration_s:
            res = await stream_request(client, target.url, target.body, target.endpoint, 0.0, t0)
            num_ok += res.ok
    await asyncio.gather(*(user() for _ in range(concurrency)))
    capacity = num_ok / (time.perf_counter() - t0)
    assert capacity > 0, "no request completed while measuring capacity"
    return capacity


async def open_loop(client: httpx.AsyncClient, targets: list[Target], *, rate_per_s: float, duration_s: float,
                    seed: int) -> list[RequestResult]:
    """Poisson arrivals at rate_per_s for duration_s, each request sent at its time whatever
    the server does (a slow server shows as latency and refusals, not as fewer arrivals).
    The client's read timeout bounds each request (see load_client)."""
    rng = random.Random(seed)
    weights = [t.weight for t in targets]
    t0 = time.perf_counter()
    tasks: list[asyncio.Task[RequestResult]] = []
    at = rng.expovariate(rate_per_s)
    while at < duration_s:
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        target = rng.choices(targets, weights)[0]
        tasks.append(asyncio.create_task(stream_request(client, target.url, target.body, target.endpoint, at, t0)))
        at += rng.expovariate(rate_per_s)
    return list(await asyncio.gather(*tasks))


def load_client(give_up_s: float) -> httpx.AsyncClient:
    """A client whose requests give up after give_up_s without a byte: the gateway sends its
    headers with the first token, so that is "no first token within give_up_s". httpx then
    closes the connection itself (the gateway cancels the request), which cancelling the
    request's task from outside would not always do."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    timeout = httpx.Timeout(connect=10.0, read=give_up_s, write=10.0, pool=give_up_s)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


def summarize_phase(name: str, results: list[RequestResult], budget_ms: float | None = None) -> PhaseSummary:
    ok = [r for r in results if r.ok]
    refused = [r for r in results if r.status == 429]
    failed = [r for r in results if not r.ok and r.status != 429]
    ttfts = [r.ttft_s * 1000 for r in ok if r.ttft_s is not None]
    refusal_ms = [(r.finished_at - r.sent_at) * 1000 for r in refused if r.finished_at is not None]
    return PhaseSummary(
        name=name, num_sent=len(results), statuses=Counter(r.status for r in results),
        reject_reasons=Counter(r.reject_reason for r in refused), num_errors=len(failed),
        ttft_p50_ms=percentile(ttfts, 50), ttft_p95_ms=percentile(ttfts, 95),
        refusal_p50_ms=percentile(refusal_ms, 50), refusal_p95_ms=percentile(refusal_ms, 95),
        budget_ms=budget_ms, errors=[f"{r.status}: {r.error}" for r in failed])


def overload_failures(hot: PhaseSummary, cool: PhaseSummary, rss_before: int | None,
                      rss_after: int | None) -> list[str]:
    """What must hold under 3x overload and after it; empty when all of it does."""
    assert hot.budget_ms is not None and cool.budget_ms is not None, "overload is judged against a budget"
    failures = []
    if hot.num_errors:
        failures.append(f"overload: {hot.num_errors} requests failed other than by a 429")
    if not hot.statuses.get(429):
        failures.append("overload: nothing was refused at 3x capacity (the excess queued instead)")
    if hot.ttft_p95_ms is None or hot.ttft_p95_ms > hot.budget_ms:
        failures.append(f"overload: admitted p95 TTFT {_fmt(hot.ttft_p95_ms)} is over the "
                        f"{hot.budget_ms:.0f} ms budget")
    if hot.refusal_p50_ms is not None and hot.refusal_p50_ms > hot.budget_ms / 4:
        failures.append(f"overload: refusals took {_fmt(hot.refusal_p50_ms)} (p50), not much less than the budget")
    if rss_before and rss_after and rss_after >= 2 * rss_before:
        failures.append(f"overload: gateway RSS grew from {rss_before >> 20} to {rss_after >> 20} MiB")
    if cool.statuses != Counter({200: cool.num_sent}):
        failures.append(f"recovery: not every request succeeded: {dict(cool.statuses)}")
    if cool.ttft_p95_ms is None or cool.ttft_p95_ms > cool.budget_ms:
        failures.append(f"recovery: p95 TTFT {_fmt(cool.ttft_p95_ms)} is over the {cool.budget_ms:.0f} ms budget")
    return failures


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


@dataclass
class OverloadRun:
    capacity: float
    hot: PhaseSummary
    cool: PhaseSummary
    rss_before: int | None
    rss_after: int | None

    @property
    def failures(self) -> list[str]:
        return overload_failures(self.hot, self.cool, self.rss_before, self.rss_after)

    def report(self) -> str:
        rss = ("-" if self.rss_before is None else
               f"{self.rss_before >> 20} MiB before, {self.rss_after >> 20 if self.rss_after else '-'} MiB after")
        return "\n".join([f"capacity {self.capacity:.1f} req/s", str(self.hot), str(self.cool), f"gateway RSS {rss}",
                          "PASS" if not self.failures else "FAIL:\n  " + "\n  ".join(self.failures)])


async def run_overload(target: Target, *, budget_ms: float, overload_s: float, recovery_s: float,
                       concurrency: int = 4, gateway_pid: int | None = None, seed: int = 1) -> OverloadRun:
    async with load_client(give_up_s=3 * budget_ms / 1000) as http:  # no token after 3x the budget: failed
        capacity = await closed_loop_capacity(http, target, concurrency=concurrency, duration_s=3.0)
        rss_before = rss_bytes(gateway_pid) if gateway_pid else None
        hot = await open_loop(http, [target], rate_per_s=3 * capacity, duration_s=overload_s, seed=seed)
        rss_after = rss_bytes(gateway_pid) if gateway_pid else None
        await asyncio.sleep(1.0)  # what queued under overload drains or is refused
        cool = await open_loop(http, [target], rate_per_s=capacity / 2, duration_s=recovery_s, seed=seed + 1)
    return OverloadRun(capacity, summarize_phase(f"3x capacity for {overload_s:.0f}s", hot, budget_ms),
                       summarize_phase(f"0.5x capacity for {recovery_s:.0f}s", cool, budget_ms), rss_before, rss_after)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running gateway (default: start a tiny worker and a gateway here)")
    p.add_argument("--endpoint", default="inline", help="policy endpoint to overload")
    p.add_argument("--budget-ms", type=float, default=2000.0, help="the endpoint's ttft_p95_ms")
    p.add_argument("--gateway-pid", type=int, default=None, help="with --url: measure this process's RSS")
    p.add_argument("--duration", type=float, default=60.0, help="seconds at 3x capacity")
    p.add_argument("--recovery", type=float, default=15.0, help="seconds at 0.5x capacity afterwards")
    p.add_argument("--max-tokens", type=int, default=DEMO_BODY["max_tokens"])
    a = p.parse_args(argv)
    body = {**DEMO_BODY, "max_tokens": a.max_tokens}
    if a.url:
        target = Target(a.endpoint, f"{a.url.rstrip('/')}/v1/endpoints/{a.endpoint}/completions", body)
        run = asyncio.run(run_overload(target, budget_ms=a.budget_ms, overload_s=a.duration,
                                       recovery_s=a.recovery, gateway_pid=a.gateway_pid))
    else:
        with local_cluster(max_num_seqs=2) as cluster:
            target = Target(a.endpoint, f"{cluster.base}/v1/endpoints/{a.endpoint}/completions", body)
            run = asyncio.run(run_overload(target, budget_ms=a.budget_ms, overload_s=a.duration,
                                           recovery_s=a.recovery, gateway_pid=cluster.gateway_pid))
    print(run.report())
    return 0 if not run.failures else 1


@dataclass(frozen=True)
class LocalCluster:
    base: str
    gateway_pid: int
    worker_pid: int
    worker_address: str


@contextlib.contextmanager
def local_cluster(*, max_num_seqs: int, policy: str = DEMO_POLICY) -> Iterator[LocalCluster]:
    """A tiny worker and a gateway on free ports, serving `policy`; stopped (SIGTERM) on exit."""
    from laneway.procs import start_gateway, start_worker

    os.environ.setdefault("LANEWAY_TRACING", "off")  # the children inherit it: no trace files
    tmp = Path(tempfile.mkdtemp(prefix="laneway-load-"))
    (tmp / "policy.yaml").write_text(policy)
    worker = start_worker(tmp, "--max-num-seqs", str(max_num_seqs))
    try:
        gateway = start_gateway(tmp, [worker], "--policy", str(tmp / "policy.yaml"))
        try:
            assert gateway.popen is not None and worker.popen is not None
            print(f"started worker {worker.address} and gateway :{gateway.port} (logs in {tmp})", flush=True)
            yield LocalCluster(f"http://127.0.0.1:{gateway.port}", gateway.popen.pid, worker.popen.pid,
                               worker.address)
        finally:
            gateway.stop()
    finally:
        worker.stop()


if __name__ == "__main__":
    sys.exit(main())
