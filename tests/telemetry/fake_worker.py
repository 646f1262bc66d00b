"""A fake worker: the real gRPC contract, canned tokens, no model. Runs on its own thread and loop.

It records every Generate call and its metadata, so tests can check what the gateway sends
(traceparent, latency targets, lane), and answers Load with a report a test may replace.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from laneway.procs import free_port
from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc

REJECTED_PROMPT = "please reject me"  # answered with INVALID_ARGUMENT, like a prompt too long


class FakeServicer(pb_grpc.WorkerServicer):
    def __init__(self, num_tokens: int, token_delay_s: float) -> None:
        self.num_tokens = num_tokens
        self.token_delay_s = token_delay_s
        self.metadata: list[dict[str, str]] = []
        self.requests: list[pb.GenerateRequest] = []
        self.load_report = pb.LoadReport(num_free_kv_blocks=100, num_total_kv_blocks=100, max_num_seqs=64)

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
                       ) -> AsyncIterator[pb.GenerateChunk]:
        self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        self.requests.append(request)
        if request.text == REJECTED_PROMPT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "this fake worker refuses that prompt")
        n = min(self.num_tokens, request.sampling.max_tokens)
        for i in range(n):
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            chunk = pb.GenerateChunk(token_ids=[65 + i % 26], text=chr(65 + i % 26))
            if i == 0:
                chunk.prompt_tokens = 7
            if i == n - 1:
                chunk.finish_reason = pb.FINISH_REASON_LENGTH
                chunk.usage.CopyFrom(pb.Usage(prompt_tokens=7, completion_tokens=n, cached_prompt_tokens=3))
            yield chunk

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReport:
        return self.load_report

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        return pb.InfoResponse(model="fake", max_model_len=2048, block_size=16, vocab_size=256, worker_id="fake")


class FakeWorker:
    def __init__(self, num_tokens: int = 4, token_delay_s: float = 0.0) -> None:
        self.servicer = FakeServicer(num_tokens, token_delay_s)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-worker", daemon=True)
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeWorker:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        pb_grpc.add_WorkerServicer_to_server(self.servicer, self._server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self._server)
        self._server.add_insecure_port(self.address)
        await self._server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
