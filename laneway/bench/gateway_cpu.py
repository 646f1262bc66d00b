"""The gateway's CPU time per streamed token, with several streams in flight.

`python -m laneway.bench.gateway_cpu` starts `laneway serve` (gateway in the main process,
its worker a child; no Redis), keeps `--concurrency` streaming completions in flight until
`--requests` are done, and divides the gateway process's CPU time (/proc/PID/stat) by the
tokens its clients received. `--checkout DIR` serves the code of another checkout (the
server starts in DIR, so `laneway` is imported from there): alternate runs against two
checkouts to compare gateway changes on the same machine. The per-token figure moves far
less with a shared machine's noise than wall time does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import httpx

from laneway.bench.serve_overhead import process_cpu_s
from laneway.procs import wait_ready


async def _stream(client: httpx.AsyncClient, url: str, model: str, max_tokens: int) -> int:
    body = {"model": model, "prompt": "hello world " * 8, "max_tokens": max_tokens, "stream": True,
            "temperature": 0, "ignore_eos": True}
    chunks = 0
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            chunks += line.startswith("data: {")
    return chunks


async def drive(base: str, pid: int, model: str, concurrency: int, num_requests: int, max_tokens: int) -> dict:
    url = f"{base}/v1/completions"
    async with httpx.AsyncClient(timeout=300) as client:
        await _stream(client, url, model, max_tokens)  # warm-up
        gate = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with gate:
                return await _stream(client, url, model, max_tokens)

        start, cpu_start = time.perf_counter(), process_cpu_s(pid)
        chunks = sum(await asyncio.gather(*(one() for _ in range(num_requests))))
        wall, cpu = time.perf_counter() - start, process_cpu_s(pid) - cpu_start
    return {"concurrency": concurrency, "requests": num_requests, "chunks": chunks,
            "chunks_per_s": round(chunks / wall, 1), "gateway_cpu_us_per_chunk": round(cpu / chunks * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m laneway.bench.gateway_cpu")
    p.add_argument("--model", default="tiny")
    p.add_argument("--port", type=int, default=8431)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--checkout", default=None, help="serve the code of this checkout (default: the current one)")
    a = p.parse_args(argv)
    base = f"http://127.0.0.1:{a.port}"
    server = subprocess.Popen([sys.executable, "-m", "laneway.cli", "serve", "--model", a.model, "--no-redis",
                               "--port", str(a.port)], cwd=a.checkout, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        try:
            wait_ready(base, timeout=300)
        except TimeoutError:
            raise SystemExit(f"laneway serve did not become ready at {base}") from None
        result = asyncio.run(drive(base, server.pid, a.model, a.concurrency, a.requests, a.max_tokens))
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
