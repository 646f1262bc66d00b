"""Run a workload against a server, open loop: each request leaves at its planned time.

The sender never waits for an earlier request: a slow server shows up as latency, queue
and refusals, never as a slower arrival rate (the coordinated-omission trap of closed
loops). Each request records when it was scheduled and when it actually left, so the
generator's own lag is measured in the same run (`send_lag_*` in every summary) and a
run whose generator fell behind says so instead of reporting a kinder load than planned.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from laneway.load.client import RequestResult, send_request_fast
from laneway.load.http1 import Http1Pool
from laneway.load.progress import Progress
from laneway.load.prompts import PromptMaker
from laneway.load.workload import PlannedRequest, Workload


@dataclass(frozen=True)
class Target:
    base_url: str  # e.g. http://127.0.0.1:8000 (paths come from the workload)
    api_key: str | None = None
    max_connections: int = 4096  # idle keep-alives kept; in-flight requests are never capped
    connect_timeout_s: float = 10.0

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None

    def client(self) -> Http1Pool:
        return Http1Pool(self.base_url, self.connect_timeout_s, max_idle=self.max_connections)


@dataclass
class RunResult:
    label: str
    results: list[RequestResult]  # one per planned request, in plan order
    elapsed_s: float  # first send to last response (or the drain timeout)
    planned_duration_s: float
    # os.getloadavg() around the run: on a shared machine, other work moves every latency.
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


async def run_open_loop(target: Target, workload: Workload, plan: list[PlannedRequest], *, label: str = "load",
                        progress: Progress | None = None, drain_timeout_s: float = 120.0) -> RunResult:
    prompts = PromptMaker(workload)
    bodies = [prompts.body(r) for r in plan]  # built before t0, so building never delays a send
    paths = [workload.endpoint(r.endpoint).path(workload.api) for r in plan]
    streams = [workload.endpoint(r.endpoint).stream for r in plan]
    sent_at: dict[int, float] = {}
    load_before = os.getloadavg()
    async with target.client() as client:
        t0 = time.perf_counter()

        async def one(i: int) -> RequestResult:
            sent_at[i] = time.perf_counter() - t0
            if progress is not None:
                progress.on_sent(sent_at[i] - plan[i].at_s)
            res = await send_request_fast(client, paths[i], bodies[i], plan[i].endpoint, plan[i].at_s, t0,
                                          target.headers, streams[i])
            if progress is not None:
                progress.on_done(res)
            return res

        if progress is not None:
            progress.start()
        tasks: list[asyncio.Task[RequestResult]] = []
        for i, req in enumerate(plan):
            delay = req.at_s - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        done, pending = await asyncio.wait(tasks, timeout=drain_timeout_s) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        if progress is not None:
            await progress.stop()
    results = []
    for i, (req, t) in enumerate(zip(plan, tasks)):
        if t in done:
            results.append(t.result())
        else:
            results.append(RequestResult(endpoint=req.endpoint, scheduled_at=req.at_s, sent_at=sent_at.get(i, req.at_s),
                                         error=f"not finished {drain_timeout_s:.0f}s after the last send"))
    return RunResult(label, results, elapsed, workload.duration_s, load_before, os.getloadavg())
