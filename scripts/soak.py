"""Soak: ~80% of measured capacity for ten minutes, then check nothing leaked.

    python scripts/soak.py                        # starts a tiny worker (4 slots) + gateway itself
    python scripts/soak.py --minutes 30 --load 0.8
    python scripts/soak.py --url http://127.0.0.1:8000 --worker 127.0.0.1:50051 \
        --gateway-pid 1234 --worker-pid 1233      # against running processes

Traffic is open loop (Poisson), mixed: interactive completions and streamed chat. Every
minute it prints a line (sent, statuses, TTFT p95, RSS). At the end it passes (exit 0) when:
- no request failed (a 5xx, a broken stream, a connection error); refusals at 80% are
  reported and allowed up to --max-refusal-share (Poisson bursts do exceed capacity);
- memory did not grow: each process's RSS at the end is within --max-growth of its RSS
  after the first minute (warm-up, caches and pools filled);
- no KV block leaked: once idle, every worker's Load report has all blocks free and no
  sequence running or waiting.
Not part of `make test` (ten minutes); tests/lifecycle covers the same paths briefly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

import grpc  # noqa: E402

from laneway_proto import worker_pb2 as pb  # noqa: E402
from laneway_proto import worker_pb2_grpc as pb_grpc  # noqa: E402
from scripts.overload import (  # noqa: E402
    Target,
    closed_loop_capacity,
    load_client,
    local_cluster,
    open_loop,
    rss_bytes,
    summarize_phase,
)

SOAK_POLICY = """\
version: 1
default_endpoint: inline
auth: {required: false}
lanes:
  interactive: {priority: 0, batch_window_ms: 2, max_batch_size: 8, max_queue_depth: 64, max_queue_wait_ms: 2000}
  streaming: {priority: 1, batch_window_ms: 5, max_batch_size: 16, max_queue_depth: 256, max_queue_wait_ms: 5000}
endpoints:
  inline: {lane: interactive, slo: {ttft_p95_ms: 2000}, limits: {max_tokens: 64}}
  chat: {lane: streaming, slo: {ttft_p95_ms: 5000}, limits: {max_tokens: 256}}
"""


@dataclass
class Minute:
    index: int
    sent: int
    statuses: Counter
    ttft_p95_ms: float | None
    rss: dict[str, int]

    def __str__(self) -> str:
        rss = ", ".join(f"{name} {value >> 20} MiB" for name, value in self.rss.items())
        p95 = "-" if self.ttft_p95_ms is None else f"{self.ttft_p95_ms:.0f} ms"
        return f"minute {self.index:>3}: {self.sent} sent, {dict(self.statuses)}, TTFT p95 {p95}; RSS {rss}"


def worker_load(address: str) -> pb.LoadReport:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.WorkerStub(channel).Load(pb.LoadRequest(), timeout=5)


def wait_idle(addresses: list[str], timeout_s: float = 60.0) -> list[pb.LoadReport]:
    deadline = time.monotonic() + timeout_s
    while True:
        loads = [worker_load(a) for a in addresses]
        idle = all(r.num_running == 0 and r.num_waiting == 0 and r.num_free_kv_blocks == r.num_total_kv_blocks
                   for r in loads)
        if idle or time.monotonic() > deadline:
            return loads


async def soak(base: str, *, minutes: float, load: float, pids: dict[str, int]) -> tuple[float, list[Minute], list]:
    targets = [
        Target("inline", f"{base}/v1/endpoints/inline/completions",
               {"prompt": "def handler(request):", "max_tokens": 32, "ignore_eos": True}, weight=0.7),
        Target("chat", f"{base}/v1/endpoints/chat/completions",
               {"prompt": "Summarise the ticket below.", "max_tokens": 96, "ignore_eos": True}, weight=0.3),
    ]
    async with load_client(give_up_s=60.0) as http:
        capacity = await closed_loop_capacity(http, targets[0], concurrency=8, duration_s=5.0)
        # Chat requests are 3x longer than the calibration's: scale the rate to the mix.
        mean_cost = sum(t.weight * t.body["max_tokens"] for t in targets) / targets[0].body["max_tokens"]
        rate = load * capacity / mean_cost
        print(f"capacity {capacity:.1f} inline req/s; soaking at {rate:.1f} req/s ({load:.0%}) for {minutes:g} min",
              flush=True)
        every: list[Minute] = []
        results = []
        num_windows = max(1, round(minutes))
        window_s = minutes * 60.0 / num_windows  # about a minute each
        for i in range(num_windows):
            batch = await open_loop(http, targets, rate_per_s=rate, duration_s=window_s, seed=i)
            results += batch
            summary = summarize_phase(f"minute {i + 1}", batch)
            every.append(Minute(i + 1, len(batch), summary.statuses, summary.ttft_p95_ms,
                                {name: rss_bytes(pid) for name, pid in pids.items()}))
            print(every[-1], flush=True)
    return rate, every, results


def failures(minutes: list[Minute], results: list, loads: list[pb.LoadReport], *, max_growth: float,
             max_refusal_share: float) -> list[str]:
    out = []
    summary = summarize_phase("soak", results)
    if summary.num_errors:
        out.append(f"{summary.num_errors} requests failed, e.g. {summary.errors[:3]}")
    refused = summary.statuses.get(429, 0)
    if refused > max_refusal_share * max(1, summary.num_sent):
        out.append(f"{refused} of {summary.num_sent} requests refused at this load")
    if len(minutes) >= 2:
        for name, warm in minutes[0].rss.items():
            end = minutes[-1].rss[name]
            if end > warm * (1 + max_growth):
                out.append(f"{name} RSS grew from {warm >> 20} MiB (minute 1) to {end >> 20} MiB")
    for r in loads:
        if r.num_running or r.num_waiting or r.num_free_kv_blocks != r.num_total_kv_blocks:
            out.append(f"worker not idle at the end: {r.num_running} running, {r.num_waiting} waiting, "
                       f"{r.num_total_kv_blocks - r.num_free_kv_blocks} KV blocks held")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running gateway (default: start a tiny worker and a gateway here)")
    p.add_argument("--worker", action="append", default=[], help="with --url: worker host:port to check for leaks")
    p.add_argument("--gateway-pid", type=int, default=None)
    p.add_argument("--worker-pid", type=int, action="append", default=[])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--load", type=float, default=0.8, help="share of measured capacity to offer")
    p.add_argument("--max-growth", type=float, default=0.2, help="allowed RSS growth after the first minute")
    p.add_argument("--max-refusal-share", type=float, default=0.01)
    a = p.parse_args(argv)

    def run(base: str, workers: list[str], pids: dict[str, int]) -> int:
        rate, minutes, results = asyncio.run(soak(base, minutes=a.minutes, load=a.load, pids=pids))
        loads = wait_idle(workers)
        found = failures(minutes, results, loads, max_growth=a.max_growth, max_refusal_share=a.max_refusal_share)
        print(f"\n{summarize_phase(f'{a.minutes:g} minutes at {rate:.1f} req/s', results)}")
        print(f"KV at the end: {[(r.num_free_kv_blocks, r.num_total_kv_blocks) for r in loads]} (free, total)")
        print("PASS" if not found else "FAIL:\n  " + "\n  ".join(found))
        return 0 if not found else 1

    if a.url:
        pids = {"gateway": a.gateway_pid} if a.gateway_pid else {}
        pids.update({f"worker{i}": pid for i, pid in enumerate(a.worker_pid)})
        return run(a.url.rstrip("/"), a.worker, pids)
    with local_cluster(max_num_seqs=4, policy=SOAK_POLICY) as cluster:
        return run(cluster.base, [cluster.worker_address],
                   {"gateway": cluster.gateway_pid, "worker": cluster.worker_pid})


if __name__ == "__main__":
    sys.exit(main())
