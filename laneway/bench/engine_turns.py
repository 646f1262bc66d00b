"""The in-process engine as one more path of `laneway bench serve`'s turns.

The c=1 target compares a served stream with the engine driven in-process. Measured in
separate stretches (the engine first, the servers minutes later), that ratio carries the
drift of a shared machine, which on 2 cores moves a decode step by 10-30% within minutes.
Here the engine takes its turn with the served paths, one request at a time
(serve_overhead.py), so the same noise hits it and them.

The engine is the worker's own: `build_engine` with the worker's settings (model, threads,
KV pool), built and stepped on the main thread of a process of its own, as a worker builds
and steps it on one thread. So what separates the served paths from it is serving alone:
the gRPC servicer, the hand-off per token, the gateway, the client's reading.

`python -m laneway.bench.engine_turns` is that process: it prints `ready`, then for each
request line on stdin (JSON: prompt ids, max tokens) runs the request alone and answers one
line of JSON with its times, measured from the moment the line was read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from laneway.bench.serve_drive import MakeSend, SendFn, Shape, token_count_problem
from laneway.bench.serve_stats import StreamSample

READY = "ready"
P = TypeVar("P")


def engine_path(model: str, num_threads: int, kv_cache_bytes: int, shape: Shape, log_path: Path) -> MakeSend:
    """A MakeSend (serve_overhead.py) whose requests run on a fresh engine process; the
    process starts on the first request (the turns' warm-up) and ends at close."""
    cmd = [sys.executable, "-m", "laneway.bench.engine_turns", "--model", model, "--num-threads", str(num_threads),
           "--kv-cache-memory", str(kv_cache_bytes)]

    def make() -> tuple[SendFn, Callable[[], object]]:
        proc: asyncio.subprocess.Process | None = None

        async def start() -> asyncio.subprocess.Process:
            with log_path.open("ab") as log:
                p = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, stderr=log)
            try:
                line = await asyncio.wait_for(_pipe(p.stdout).readline(), timeout=900)
            except TimeoutError:
                line = b""
            if line.decode().strip() != READY:
                if p.returncode is None:
                    p.kill()
                await p.wait()
                raise RuntimeError(f"the in-process engine did not start (its log: {log_path})")
            return p

        async def send(index: int) -> StreamSample | str:
            nonlocal proc
            if proc is None:
                proc = await start()
            stdin = _pipe(proc.stdin)
            stdin.write((json.dumps({"ids": shape.prompt_ids(index), "max_tokens": shape.output_len}) + "\n").encode())
            await stdin.drain()
            line = await _pipe(proc.stdout).readline()
            if not line:
                return f"engine process exited ({log_path})"
            sample = StreamSample(**json.loads(line))
            return token_count_problem(sample.output_tokens, shape) or sample

        async def close() -> None:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()

        return send, close

    return make


def _pipe(stream: P | None) -> P:
    """A subprocess's PIPE end (None only if no PIPE was asked for: a bug here)."""
    if stream is None:
        raise RuntimeError("the engine process was started without its pipes")
    return stream


def run_one(engine: Any, request_id: str, ids: list[int], max_tokens: int) -> dict[str, float | int]:
    """One request alone on the engine: its times since it was added, as StreamSample fields."""
    from workers.engine.sequence import SamplingParams, Sequence

    started = time.perf_counter()
    engine.add(Sequence(request_id, ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True)))
    times: list[float] = []
    tokens = 0
    while engine.has_work():
        for out in engine.step():
            if out.token_ids:
                times.append(time.perf_counter() - started)
                tokens += len(out.token_ids)
    if not times:
        raise RuntimeError(f"request {request_id} produced no tokens")
    return {"ttft_s": times[0], "first_token_s": times[0], "last_token_s": times[-1], "output_tokens": tokens}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m laneway.bench.engine_turns")
    p.add_argument("--model", required=True)
    p.add_argument("--num-threads", type=int, required=True)
    p.add_argument("--kv-cache-memory", type=int, required=True, help="bytes, as the worker's pool")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from workers.omp_policy import apply_wait_policy

    apply_wait_policy(a.num_threads)  # before torch loads, as a worker does
    from workers.build import build_engine
    from workers.config import WorkerConfig
    from workers.engine.config import CacheConfig

    engine = build_engine(WorkerConfig(model=a.model, num_threads=a.num_threads,
                                       cache=CacheConfig(kv_cache_memory_bytes=a.kv_cache_memory))).loop.engine
    print(READY, flush=True)
    for n, line in enumerate(sys.stdin):
        request = json.loads(line)
        print(json.dumps(run_one(engine, f"turn-{n}", request["ids"], request["max_tokens"])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
