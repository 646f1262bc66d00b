"""Lanes over real processes: a gateway with two tiny-model workers.

No timing assertions: the checks are about order (interactive work finishes while bulk
work is still queued), loss (every request is answered) and cleanup (no KV held).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import worker_load
from tests.support.processes import Proc, start_gateway, start_worker

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
default_endpoint: chat
auth: {required: false}
lanes:
  interactive: {priority: 0, batch_window_ms: 2, max_batch_size: 8, max_queue_depth: 64, max_queue_wait_ms: 20000}
  streaming: {priority: 1, batch_window_ms: 5, max_batch_size: 16, max_queue_depth: 256, max_queue_wait_ms: 20000}
  bulk:
    priority: 2
    batch_window_ms: 20
    max_batch_size: 16
    max_queue_depth: 10000
    max_queue_wait_ms: 600000
    capacity_share: {seqs: 0.5, kv: 0.5}
    preemptible: true
    backfill: true
  paced:  # every token after the first held until the stream ends (the interval never passes)
    kind: streaming
    priority: 1
    batch_window_ms: 5
    max_batch_size: 16
    max_queue_depth: 256
    max_queue_wait_ms: 20000
    stream_interval_ms: 60000
endpoints:
  chat: {lane: streaming, slo: {ttft_p95_ms: 20000}}
  paced-chat: {lane: paced}
  inline-completion: {lane: interactive, slo: {ttft_p95_ms: 20000}, limits: {max_tokens: 64}}
  nightly-labeling: {lane: bulk, limits: {max_tokens: 400}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Proc], Path]]:
    tmp = tmp_path_factory.mktemp("lanes-e2e")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    workers = [start_worker(tmp, "--max-num-seqs", "4", name=f"worker{i}") for i in range(2)]
    gateway = start_gateway(tmp, workers, "--policy", str(policy))
    yield f"http://127.0.0.1:{gateway.port}", workers, tmp
    gateway.stop()
    for w in workers:
        w.stop()


def _all_idle(workers: list[Proc]) -> bool:
    loads = [worker_load(w.address) for w in workers if w.popen and w.popen.poll() is None]
    return all(r.num_running == 0 and r.num_waiting == 0 and r.num_free_kv_blocks == r.num_total_kv_blocks
               for r in loads)


async def _wait_idle(workers: list[Proc], timeout: float = 20.0) -> bool:
    for _ in range(int(timeout / 0.1)):
        if _all_idle(workers):
            return True
        await asyncio.sleep(0.1)
    return _all_idle(workers)


def test_interactive_finishes_while_bulk_flood_is_queued(cluster) -> None:
    base, workers, _ = cluster
    finished_bulk: list[int] = []

    async def bulk(client: httpx.AsyncClient, i: int) -> int:
        r = await client.post(f"{base}/v1/endpoints/nightly-labeling/completions",
                              json={"prompt": f"label ticket {i}", "max_tokens": 300, "ignore_eos": True})
        finished_bulk.append(i)
        return r.status_code

    async def interactive(client: httpx.AsyncClient, i: int) -> tuple[int, int]:
        r = await client.post(f"{base}/v1/endpoints/inline-completion/completions",
                              json={"prompt": f"def f{i}(", "max_tokens": 8, "ignore_eos": True})
        assert r.headers.get("x-laneway-lane") == "interactive"
        return r.status_code, len(finished_bulk)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            bulk_tasks = [asyncio.create_task(bulk(client, i)) for i in range(40)]
            await asyncio.sleep(0.5)  # the flood is queued and running
            results = await asyncio.gather(*(interactive(client, i) for i in range(6)))
            for status, bulk_done_then in results:
                assert status == 200
                # Interactive requests did not wait for the bulk flood to drain.
                assert bulk_done_then < 40
            assert all(s == 200 for s in await asyncio.gather(*bulk_tasks))

    asyncio.run(main())


def test_a_paced_lane_streams_its_first_token_alone_and_the_rest_with_the_finish(cluster) -> None:
    """The lane's stream_interval_ms reaches the worker (workers/engine/stream_pacing.py):
    the gateway writes one SSE event per worker message, so two events carry 48 tokens. (The
    first leaves alone as long as the worker's loop wakes before the 48 are made: a loop
    that wakes later finds both messages queued and sends them as one.)"""
    base, _, _ = cluster
    body = {"prompt": "pace me", "max_tokens": 48, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{base}/v1/endpoints/paced-chat/completions", json=body) as r:
            assert r.status_code == 200 and r.headers["x-laneway-lane"] == "paced"
            events = [json.loads(line[6:]) for line in r.iter_lines()
                      if line.startswith("data: ") and line != "data: [DONE]"]
    content = [e for e in events if e["choices"]]
    assert len(content) == 2, content
    assert content[0]["choices"][0]["finish_reason"] is None
    assert content[1]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 48


def test_random_disconnects_leave_no_running_sequences_or_kv(cluster) -> None:
    base, workers, _ = cluster
    rng = random.Random(7)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        endpoint = rng.choice(["chat", "inline-completion", "nightly-labeling"])
        max_tokens = 60 if endpoint == "inline-completion" else 200
        req = {"prompt": f"request {i}", "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
        cut_after = rng.choice([0, 0, 1, 3, 10])  # 0: leave while still queued (before any byte)
        try:
            async with asyncio.timeout(rng.uniform(0.01, 0.3) if cut_after == 0 else 60):
                async with client.stream("POST", f"{base}/v1/endpoints/{endpoint}/completions", json=req) as r:
                    n = 0
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            n += 1
                            if n >= cut_after:
                                return  # leaving the context closes the connection mid-stream
        except TimeoutError:
            return

    async def main() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(*(one(client, i) for i in range(40)))
        assert await _wait_idle(workers), [worker_load(w.address) for w in workers]

    asyncio.run(main())


def test_killing_a_worker_loses_no_request_that_had_not_started(cluster) -> None:
    base, workers, tmp = cluster
    victim = workers[1]
    assert victim.popen is not None
    # "Started" is judged on the client's side, which lags the worker: the victim is frozen
    # first (SIGSTOP: it sends nothing more), tokens already on their way get this long to
    # arrive, and only then is it decided which requests had started, and the victim killed.
    in_flight_s = 0.5

    async def one(client: httpx.AsyncClient, i: int, started: set[int]) -> str:
        req = {"prompt": f"job {i}", "max_tokens": 400, "stream": True, "ignore_eos": True}
        events: list[str] = []
        async with client.stream("POST", f"{base}/v1/endpoints/chat/completions", json=req) as r:
            if r.status_code != 200:
                return f"status {r.status_code}"
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    if '"error"' not in line:
                        started.add(i)
                    events.append(line[6:])
        assert events[-1] == "[DONE]", "every stream ends, even a broken one"
        if any('"error"' in e for e in events[:-1]):
            return "error-event"
        last = json.loads(events[-2])
        return last["choices"][0]["finish_reason"]

    async def main() -> None:
        started: set[int] = set()
        async with httpx.AsyncClient(timeout=120) as client:
            tasks = [asyncio.create_task(one(client, i, started)) for i in range(24)]
            await asyncio.sleep(0.6)
            victim.popen.send_signal(signal.SIGSTOP)
            await asyncio.sleep(in_flight_s)
            started_at_kill = set(started)
            victim.kill()
            results = await asyncio.gather(*tasks)
        unstarted = set(range(24)) - started_at_kill
        assert unstarted, "every request had started before the kill (8 sequence slots, 24 requests): nothing proved"
        for i, outcome in enumerate(results):
            assert outcome in {"length", "error-event"}, (i, outcome)
            if i in unstarted:
                assert outcome == "length", (
                    f"request {i} had not started when the worker died: it must finish elsewhere")
        assert "length" in results

    asyncio.run(main())
    # The survivor keeps serving; put the victim back for any later test in this module.
    r = httpx.post(f"{base}/v1/completions", json={"prompt": "after", "max_tokens": 4}, timeout=30)
    assert r.status_code == 200
