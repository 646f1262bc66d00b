"""An in-process gRPC worker that answers Generate with one "A" per token and records every call.

Not a fake of Redis (tests use real Redis); it stands in for the model so gateway tests
can count exactly which prompts reached a worker and how often.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.support.processes import free_port

STOP_EARLY = "stop-early"  # a prompt containing this ends after 2 tokens (finish_reason stop)
FAILS_HERE = "fails-here"  # a prompt containing this fails with INTERNAL; the worker stays healthy


@dataclass
class FakeWorker(pb_grpc.WorkerServicer):
    token_delay_s: float = 0.0
    prompts: Counter[str] = field(default_factory=Counter)  # prompt text -> Generate calls
    lanes: Counter[str] = field(default_factory=Counter)  # lane name -> Generate calls
    endpoints: Counter[str] = field(default_factory=Counter)  # policy endpoint -> Generate calls
    num_running: int = 0

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext):
        prompt = request.text or "\n".join(m.content for m in request.chat.messages)
        self.prompts[prompt] += 1
        self.lanes[request.lane.name] += 1
        self.endpoints[request.endpoint] += 1
        if FAILS_HERE in prompt:
            await context.abort(grpc.StatusCode.INTERNAL, "this request failed here")
        num_tokens = 2 if STOP_EARLY in prompt else request.sampling.max_tokens
        prompt_tokens = len(prompt.encode())
        self.num_running += 1
        try:
            for i in range(num_tokens):
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                chunk = pb.GenerateChunk(token_ids=[65], text="A", prompt_tokens=prompt_tokens if i == 0 else 0)
                if i == num_tokens - 1:
                    chunk.finish_reason = pb.FINISH_REASON_STOP if STOP_EARLY in prompt else pb.FINISH_REASON_LENGTH
                    chunk.usage.CopyFrom(pb.Usage(prompt_tokens=prompt_tokens, completion_tokens=num_tokens))
                yield chunk
        finally:
            self.num_running -= 1

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReport:
        return pb.LoadReport(num_running=self.num_running, max_num_seqs=64, num_total_kv_blocks=1000,
                             num_free_kv_blocks=1000)

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        return pb.InfoResponse(model="fake", max_model_len=4096, block_size=16, vocab_size=256, worker_id="fake")

    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext) -> pb.AbortResponse:
        return pb.AbortResponse(found=False)


@dataclass
class RunningFake:
    servicer: FakeWorker
    server: grpc.aio.Server
    address: str


async def start_fake_worker(token_delay_s: float = 0.0) -> RunningFake:
    servicer = FakeWorker(token_delay_s)
    server = grpc.aio.server()
    pb_grpc.add_WorkerServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return RunningFake(servicer, server, f"127.0.0.1:{port}")
