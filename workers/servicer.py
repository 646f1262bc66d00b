"""The worker's gRPC service: the only async part of a worker.

Generate is a server-streaming async generator. When the client goes away (gateway
cancelled the call), grpc.aio cancels the generator; its `finally` aborts the sequence so
the engine frees its KV blocks on the next step. Nothing keeps decoding for nobody.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from workers.engine.engine_loop import EngineLoop
from workers.engine.outputs import RequestOutput
from workers.engine.request_error import InvalidRequest
from workers.engine.tokenizer import Tokenizer
from workers.telemetry import StreamEnd, WorkerTelemetry
from workers.wire import ModelLimits, has_constraint, to_chunk, to_load_report, to_sequence

if TYPE_CHECKING:
    from workers.grammar.compiler import GrammarCompiler

log = logging.getLogger(__name__)


class WorkerServicer(pb_grpc.WorkerServicer):
    def __init__(self, loop: EngineLoop, tokenizer: Tokenizer, limits: ModelLimits, model_name: str, block_size: int,
                 max_num_seqs: int, worker_id: str, max_waiting: int = 4096,
                 telemetry: WorkerTelemetry | None = None, grammars: GrammarCompiler | None = None) -> None:
        self.loop = loop
        self.tokenizer = tokenizer
        self.limits = limits
        self.model_name = model_name
        self.block_size = block_size
        self.max_num_seqs = max_num_seqs
        self.worker_id = worker_id
        self.max_waiting = max_waiting
        self.is_draining = False
        self.num_active_streams = 0
        self.telemetry = telemetry
        self.grammars = grammars  # None: requests with an output constraint are INVALID_ARGUMENT

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
                       ) -> AsyncIterator[pb.GenerateChunk]:
        received_s = time.time()
        if self.is_draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker is draining")
        if self.loop.fatal_error is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker engine has failed")
        if self.loop.load.num_waiting >= self.max_waiting:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"worker queue is full ({self.max_waiting} waiting)")
        try:
            if has_constraint(request):  # compiling a big schema must not stall every other stream
                seq = await asyncio.to_thread(to_sequence, request, self.tokenizer, self.limits, self.grammars)
            else:
                seq = to_sequence(request, self.tokenizer, self.limits)
            self.loop.engine.scheduler.check_admissible(seq)  # fixed sizes only: safe off the engine thread
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self.telemetry is not None:  # the gateway's traceparent: worker spans join its trace
            seq.trace_context = self.telemetry.carrier(context.invocation_metadata())
        outputs: asyncio.Queue[RequestOutput] = asyncio.Queue()
        aio_loop = asyncio.get_running_loop()
        seq.on_output = lambda out: aio_loop.call_soon_threadsafe(outputs.put_nowait, out)
        finished = False
        reason, error = "cancelled", None  # until the engine says otherwise
        self.num_active_streams += 1
        self.loop.add(seq)
        try:
            first = True
            while not finished:
                out = await outputs.get()
                if out.invalid_request is not None:  # refused on the engine thread (e.g. a duplicate id)
                    finished = True
                    reason, error = "error", out.invalid_request
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, out.invalid_request)
                if out.error is not None:
                    finished = True
                    reason, error = "error", out.error
                    await context.abort(grpc.StatusCode.INTERNAL, out.error)
                chunk = to_chunk(out, self.tokenizer)
                if first:
                    chunk.prompt_tokens = seq.num_prompt_tokens
                    first = False
                finished = out.is_finished
                reason = out.finish_reason or reason
                yield chunk
        finally:
            self.num_active_streams -= 1
            if not finished:
                self.loop.abort(seq.seq_id)
            if self.telemetry is not None:
                self.telemetry.stream_ended(seq, StreamEnd(
                    received_s=received_s, ended_s=time.time(), reason=reason, endpoint=request.endpoint,
                    batch_id=request.batch_id, worker_id=self.worker_id, error=error))

    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext) -> pb.AbortResponse:
        found = self.loop.is_live(request.request_id)
        self.loop.abort(request.request_id)
        return pb.AbortResponse(found=found)

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReport:
        return to_load_report(self.loop.load, self.max_num_seqs, self.is_draining)

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        return pb.InfoResponse(model=self.model_name, max_model_len=self.limits.max_model_len,
                               block_size=self.block_size, vocab_size=self.limits.vocab_size,
                               worker_id=self.worker_id)
