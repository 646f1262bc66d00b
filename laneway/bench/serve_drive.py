"""The client side of `laneway bench serve`: closed-loop streams over HTTP or straight over gRPC.

`concurrency` streams each send their next request as soon as their last one ended, until
the level's requests are used up. Every request is the same shape: a prompt of token ids
(the same ids for every system, so every server sees the same prompt length), greedy,
`ignore_eos`, a fixed number of output tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from laneway.bench.serve_stats import StreamSample

SendFn = Callable[[int], Awaitable[StreamSample | str]]  # request index -> sample, or why it failed


@dataclass(frozen=True)
class Shape:
    prompt_len: int = 32
    output_len: int = 128

    def prompt_ids(self, index: int) -> list[int]:
        # Distinct per request (no prefix-cache hits between requests); ids < 256 are valid
        # in every tokenizer the bench uses (byte presets and the exported BPE).
        return [3 + (index * 7 + i * 13) % 250 for i in range(self.prompt_len)]


async def run_level(send: SendFn, concurrency: int, num_requests: int
                    ) -> tuple[list[StreamSample], dict[str, int], float]:
    """(samples, failures by reason, wall seconds) for `num_requests` requests over `concurrency` streams."""
    next_index = iter(range(num_requests))
    samples: list[StreamSample] = []
    failed: dict[str, int] = {}

    async def stream() -> None:
        for index in next_index:  # shared iterator: each request goes to exactly one stream
            sample = await send(index)
            if isinstance(sample, str):
                failed[sample] = failed.get(sample, 0) + 1
            else:
                samples.append(sample)

    started = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    return samples, failed, time.perf_counter() - started


def http_sender(pool, model: str, shape: Shape) -> SendFn:
    """Streaming /v1/completions through any OpenAI-compatible server (the lean HTTP/1.1 pool)."""
    from laneway.load.client import send_request_fast

    async def send(index: int) -> StreamSample | str:
        body = {"model": model, "prompt": shape.prompt_ids(index), "max_tokens": shape.output_len,
                "temperature": 0.0, "ignore_eos": True}
        res = await send_request_fast(pool, "/v1/completions", body, "bench", 0.0, 0.0)
        if not res.ok or not res.token_times:
            return f"HTTP {res.status}" + (f" {res.reject_reason}" if res.reject_reason else "")
        tokens = res.output_tokens or len(res.token_times)
        return StreamSample(ttft_s=res.token_times[0], first_token_s=res.token_times[0],
                            last_token_s=res.token_times[-1], output_tokens=tokens)

    return send


def grpc_sender(stub, shape: Shape) -> SendFn:
    """Generate straight on a worker: what the gateway adds is the difference to http_sender."""
    import grpc

    from laneway_proto import worker_pb2 as pb

    async def send(index: int) -> StreamSample | str:
        req = pb.GenerateRequest(request_id=f"bench-{time.monotonic_ns()}-{index}",
                                 token_ids=pb.TokenIds(ids=shape.prompt_ids(index)),
                                 sampling=pb.SamplingParams(max_tokens=shape.output_len, ignore_eos=True))
        sent = time.perf_counter()
        times: list[float] = []
        tokens = 0
        try:
            async for chunk in stub.Generate(req, timeout=600):
                if chunk.token_ids:
                    times.append(time.perf_counter() - sent)
                    tokens += len(chunk.token_ids)
        except grpc.aio.AioRpcError as exc:
            return f"gRPC {exc.code().name}"
        if not times:
            return "no tokens"
        return StreamSample(ttft_s=times[0], first_token_s=times[0], last_token_s=times[-1], output_tokens=tokens)

    return send
