#!/usr/bin/env python
"""What tracing costs the gateway: throughput with tracing on vs off, measured in one run.

Two gateway processes on this machine, identical but for LANEWAY_TRACING (on: every
request sampled, spans exported as JSON lines to a temp data directory, the single-machine
default; off: no tracer at all), in front of one fake worker that streams canned tokens
at once, so the gateway, not a model, is what is measured. Rounds alternate which gateway
is driven first; each phase runs a closed loop of concurrent streaming clients for a fixed
time. Reported: requests/s per side, the on/off ratio per round and its median (target:
at least 0.9), and the gateway's CPU time per request (from /proc), which a busy shared
machine disturbs less than throughput.

    .venv/bin/python scripts/bench_tracing.py [--rounds 5] [--seconds 4] [--concurrency 16]
    .venv/bin/python scripts/bench_tracing.py --real-worker     # a real tiny-model worker instead
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

import httpx  # noqa: E402

from laneway.procs import Proc, free_port, laneway_cmd, start_worker, wait_ready  # noqa: E402


def serve_fake_worker(port: int, num_tokens: int) -> None:
    """A worker process with the real gRPC contract and no model: tokens are free."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from laneway_proto import worker_pb2 as pb
    from laneway_proto import worker_pb2_grpc as pb_grpc

    class Servicer(pb_grpc.WorkerServicer):
        async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.GenerateChunk]:
            n = min(num_tokens, request.sampling.max_tokens)
            for i in range(n):
                chunk = pb.GenerateChunk(token_ids=[97 + i % 26], text=chr(97 + i % 26))
                if i == 0:
                    chunk.prompt_tokens = 8
                if i == n - 1:
                    chunk.finish_reason = pb.FINISH_REASON_LENGTH
                    chunk.usage.CopyFrom(pb.Usage(prompt_tokens=8, completion_tokens=n))
                yield chunk
                await asyncio.sleep(0)  # one chunk per message, as an engine step would send

        async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReport:
            return pb.LoadReport(num_free_kv_blocks=1000, num_total_kv_blocks=1000, max_num_seqs=256)

        async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
            return pb.InfoResponse(model="fake", max_model_len=4096, block_size=16, vocab_size=256, worker_id="fake")

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_WorkerServicer_to_server(Servicer(), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await server.wait_for_termination()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def drive(base: str, endpoint: str, seconds: float, concurrency: int, max_tokens: int) -> int:
    """Closed loop: `concurrency` clients each stream one request after another; returns completions."""
    url = f"{base}/v1/endpoints/{endpoint}/completions"
    body = {"prompt": "tracing bench prompt", "max_tokens": max_tokens, "stream": True}
    deadline = time.perf_counter() + seconds
    done = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with http.stream("POST", url, json=body) as r:
                async for _ in r.aiter_raw():
                    pass
                if r.status_code == 200:
                    done += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return done


def run(a: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="laneway-bench-tracing-"))
    procs: list[Proc] = []
    try:
        if a.real_worker:
            # Its traces go beside its log (laneway.procs), the same for both sides.
            worker = start_worker(tmp, "--max-num-seqs", "64", name="worker")
        else:
            port = free_port()
            worker = Proc("fake-worker", [sys.executable, __file__, "--serve-fake-worker", str(port),
                                          "--tokens", str(a.max_tokens)], port, tmp / "fake-worker.log")
            worker.start().wait_port()
        procs.append(worker)
        gateways: dict[str, Proc] = {}
        for side, tracing in (("on", "on"), ("off", "off")):
            env = {"LANEWAY_TRACING": tracing, "LANEWAY_DATA_DIR": str(tmp / side), "LANEWAY_TRACE_SAMPLE_RATIO": "1",
                   "LANEWAY_LOG_LEVEL": "WARNING"}
            port = free_port()
            g = Proc(f"gateway-{side}", laneway_cmd("gateway", "--port", str(port), "--worker", worker.address),
                     port, tmp / f"gateway-{side}.log", env=env).start().wait_port()
            wait_ready(f"http://127.0.0.1:{port}")
            procs.append(g)
            gateways[side] = g
        for g in gateways.values():  # warm up: connections, code paths, allocator
            asyncio.run(drive(f"http://127.0.0.1:{g.port}", a.endpoint, 1.0, a.concurrency, a.max_tokens))
        rates: dict[str, list[float]] = {"on": [], "off": []}
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(a.rounds):
            for side in (("on", "off") if r % 2 == 0 else ("off", "on")):
                g = gateways[side]
                assert g.popen is not None
                cpu0 = cpu_seconds(g.popen.pid)
                t0 = time.perf_counter()
                n = asyncio.run(drive(f"http://127.0.0.1:{g.port}", a.endpoint, a.seconds, a.concurrency,
                                      a.max_tokens))
                elapsed = time.perf_counter() - t0
                rates[side].append(n / elapsed)
                cpu[side].append((cpu_seconds(g.popen.pid) - cpu0) / max(1, n) * 1000.0)
            print(f"round {r + 1}: on {rates['on'][-1]:7.1f} req/s, off {rates['off'][-1]:7.1f} req/s, "
                  f"ratio {rates['on'][-1] / rates['off'][-1]:.3f}", flush=True)
        ratios = [on / off for on, off in zip(rates["on"], rates["off"])]
        spans = sum(1 for f in (tmp / "on").rglob("*.jsonl") for _ in open(f))
        off_files = list((tmp / "off").rglob("*.jsonl"))
        print(f"\nconfig: {'real tiny worker' if a.real_worker else 'fake worker'}, endpoint {a.endpoint}, "
              f"{a.concurrency} streaming clients, {a.max_tokens} tokens/request, {a.rounds} rounds x {a.seconds:g} s")
        print(f"throughput  on {statistics.median(rates['on']):.1f} req/s, off {statistics.median(rates['off']):.1f} "
              f"req/s (medians)")
        print(f"ratio on/off: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
              f"target >= 0.9")
        cpu_on, cpu_off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
        print(f"gateway CPU per request: on {cpu_on:.2f} ms, off {cpu_off:.2f} ms ({cpu_on / cpu_off - 1:+.1%})")
        print(f"spans written with tracing on: {spans}; trace files with tracing off: {len(off_files)}")
        return 0
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0, help="length of each measured phase")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--endpoint", default="inline-completion")
    p.add_argument("--real-worker", action="store_true", help="a real tiny-model worker instead of the fake one")
    p.add_argument("--serve-fake-worker", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--tokens", type=int, default=16, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve_fake_worker is not None:
        serve_fake_worker(a.serve_fake_worker, a.tokens)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
