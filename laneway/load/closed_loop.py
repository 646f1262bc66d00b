"""`--sweep concurrency=...`: N users, each sending its next request when the last ends.

This is the load test of seed 003 ("c=16"): concurrency is held, not arrival rate, so
the server's speed sets the request rate. Users are split across endpoints in proportion
to the workload's mean rates (at least one each); each user draws its requests from its
endpoint's length distributions. Closed loops hide queueing from their own latency
numbers (a slow server slows the arrivals), which is why the default is open loop.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time

from laneway.load.arrivals import Trace
from laneway.load.client import RequestResult, send_request_fast
from laneway.load.open_loop import RunResult, Target
from laneway.load.progress import Progress
from laneway.load.prompts import PromptMaker
from laneway.load.workload import EndpointWorkload, PlannedRequest, Workload


def split_users(workload: Workload, concurrency: int) -> dict[str, int]:
    """Largest-remainder split of `concurrency` by mean rate, at least one user each."""
    rates = {e.name: e.arrival.mean_rate for e in workload.endpoints}
    total = sum(rates.values()) or 1.0
    exact = {n: concurrency * r / total for n, r in rates.items()}
    users = {n: max(1, int(x)) for n, x in exact.items()}
    spare = concurrency - sum(users.values())
    for n in sorted(exact, key=lambda n: exact[n] - int(exact[n]), reverse=True):
        if spare <= 0:
            break
        users[n] += 1
        spare -= 1
    return users


async def run_closed_loop(target: Target, workload: Workload, concurrency: int, *, label: str = "load",
                          progress: Progress | None = None, drain_timeout_s: float = 120.0) -> RunResult:
    prompts = PromptMaker(workload)
    counter = itertools.count()
    results: list[RequestResult] = []
    load_before = os.getloadavg()
    async with target.client() as client:
        t0 = time.perf_counter()

        async def user(e: EndpointWorkload, k: int) -> None:
            rng = random.Random(f"{workload.seed}/{e.name}/user{k}")
            path = e.path(workload.api)
            lines = itertools.cycle(e.arrival.lines) if isinstance(e.arrival, Trace) else None
            while time.perf_counter() - t0 < workload.duration_s:
                req = _draw(e, rng, lines, next(counter), time.perf_counter() - t0)
                if progress is not None:
                    progress.on_sent(0.0)
                try:
                    res = await send_request_fast(client, path, prompts.body(req), e.name, req.at_s, t0,
                                                  target.headers, e.stream)
                except asyncio.CancelledError:  # the drain timeout: still a request that was sent
                    results.append(RequestResult(endpoint=e.name, scheduled_at=req.at_s, sent_at=req.at_s,
                                                 error="not finished before the drain timeout"))
                    raise
                results.append(res)
                if progress is not None:
                    progress.on_done(res)

        if progress is not None:
            progress.start()
        users = split_users(workload, concurrency)
        tasks = [asyncio.create_task(user(workload.endpoint(n), k)) for n, c in users.items() for k in range(c)]
        _done, pending = await asyncio.wait(tasks, timeout=workload.duration_s + drain_timeout_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        if progress is not None:
            await progress.stop()
    return RunResult(label, results, elapsed, workload.duration_s, load_before, os.getloadavg())


def _draw(e: EndpointWorkload, rng: random.Random, lines, index: int, now_s: float) -> PlannedRequest:
    if lines is not None:
        line = next(lines)
        prompt, out = line.prompt_tokens, line.max_tokens
    else:
        assert e.prompt_tokens is not None and e.output_tokens is not None, f"{e.name}: no lengths"
        prompt, out = e.prompt_tokens.draw(rng), e.output_tokens.draw(rng)
    shared = 0
    if e.shared_prefix is not None and rng.random() < e.shared_prefix.share:
        shared = min(e.shared_prefix.tokens, prompt - 1)
    return PlannedRequest(index, now_s, e.name, prompt, out, shared)
