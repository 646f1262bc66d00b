"""The worker's gRPC service: the only async part of a worker.

Generate is a server-streaming async generator. When the client goes away (gateway
cancelled the call), grpc.aio cancels the generator; its `finally` aborts the sequence so
the engine frees its KV blocks on the next step. Nothing keeps decoding for nobody.
Session carries many such streams on one call (workers/session.py); each runs the same
`stream` code, and a cancelled stream there is a cancelled Generate call here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from laneway_proto.error_codes import ERROR_CODE_KEY
from workers.engine.engine_loop import EngineLoop
from workers.engine.outputs import RequestOutput, Usage
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import Sequence
from workers.engine.tokenizer import Tokenizer
from workers.loop_mailbox import LoopMailbox
from workers.session import Metadata, StreamFailure, run_session
from workers.stream_coalesce import StreamOutbox
from workers.telemetry import StreamEnd, WorkerTelemetry
from workers.wire import (
    ModelLimits,
    UndecodableRequest,
    decode_generate_request,
    decode_session_request,
    has_constraint,
    stream_interval_s,
    to_chunk,
    to_load_report,
    to_sequences,
    total_usage,
)

if TYPE_CHECKING:  # llguidance is worker-only; the slim gateway image imports this module
    from workers.grammar.compiler import GrammarCompiler

log = logging.getLogger(__name__)
SERVICE_NAME = "laneway.worker.v1.Worker"


def add_worker_service(servicer: WorkerServicer, server: grpc.aio.Server) -> None:
    """The generated registration (every method of the Worker service), except that Generate
    decodes its request with `decode_generate_request` and Session its messages with
    `decode_session_request`: undecodable bytes are bad input."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}

    class Collect:  # takes the generated handlers instead of a server
        def add_generic_rpc_handlers(self, generic: object) -> None:
            pass

        def add_registered_method_handlers(self, service: str, methods: dict[str, grpc.RpcMethodHandler]) -> None:
            handlers.update(methods)

    pb_grpc.add_WorkerServicer_to_server(servicer, Collect())
    handlers["Generate"] = handlers["Generate"]._replace(request_deserializer=decode_generate_request)
    handlers["Session"] = handlers["Session"]._replace(request_deserializer=decode_session_request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


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
        self._draining = asyncio.Event()  # set: refuse new streams; sessions end once idle
        self.num_active_streams = 0
        self.telemetry = telemetry
        self.grammars = grammars  # None: requests with an output constraint are INVALID_ARGUMENT
        self._loop_mailbox: LoopMailbox | None = None

    @property
    def is_draining(self) -> bool:
        return self._draining.is_set()

    @is_draining.setter
    def is_draining(self, value: bool) -> None:
        if value:
            self._draining.set()
        else:
            self._draining.clear()

    async def Generate(self, request: pb.GenerateRequest | UndecodableRequest, context: grpc.aio.ServicerContext
                       ) -> AsyncIterator[pb.GenerateChunk]:
        try:
            async with contextlib.aclosing(self.stream(request, context.invocation_metadata() or ())) as chunks:
                async for chunk in chunks:
                    yield chunk
        except StreamFailure as failure:
            trailing = ((ERROR_CODE_KEY, failure.error_code),) if failure.error_code else ()
            await context.abort(failure.code, failure.message, trailing_metadata=trailing)

    async def Session(self, request_iterator: AsyncIterator[pb.SessionRequest | UndecodableRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.SessionBatch]:
        if self.is_draining:  # as Generate is refused: the gateway takes its streams elsewhere
            await context.abort(grpc.StatusCode.UNAVAILABLE, "worker is draining")
        try:
            async with contextlib.aclosing(run_session(request_iterator, self.stream, self._draining)) as batches:
                async for batch in batches:
                    yield batch
        except StreamFailure as failure:  # the call's own message was bad: it ends, alone
            await context.abort(failure.code, failure.message)

    async def stream(self, request: pb.GenerateRequest | UndecodableRequest, metadata: Metadata
                     ) -> AsyncGenerator[pb.GenerateChunk, None]:
        """One request's chunks, Generate's and a Session's alike; StreamFailure ends it with
        the status Generate answers."""
        received_s = time.time()
        if isinstance(request, UndecodableRequest):
            raise StreamFailure(grpc.StatusCode.INVALID_ARGUMENT,
                                f"request is not a laneway.worker.v1.GenerateRequest: {request.reason}")
        if self.is_draining:
            raise StreamFailure(grpc.StatusCode.UNAVAILABLE, "worker is draining")
        if self.loop.fatal_error is not None:
            raise StreamFailure(grpc.StatusCode.UNAVAILABLE, "worker engine has failed")
        if self.loop.load.num_waiting >= self.max_waiting:
            raise StreamFailure(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"worker queue is full ({self.max_waiting} waiting)")
        try:
            if has_constraint(request):  # compiling a big schema must not stall every other stream
                seqs = await asyncio.to_thread(to_sequences, request, self.tokenizer, self.limits, self.grammars)
            else:
                seqs = to_sequences(request, self.tokenizer, self.limits)  # one per choice
            interval_s = stream_interval_s(request)
            for seq in seqs:
                self.loop.engine.scheduler.check_admissible(seq)  # fixed sizes only: safe off the engine thread
        except InvalidRequest as exc:
            raise StreamFailure(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.code) from None
        by_id = {seq.seq_id: seq for seq in seqs}
        outputs: asyncio.Queue[RequestOutput] = asyncio.Queue()
        # Tokens of one choice already queued leave in one message (a reader that keeps up still
        # gets one per message): workers/stream_coalesce.py. The lane's pacing is the engine
        # thread's (workers/engine/stream_pacing.py), so a held token wakes nothing here.
        outbox = StreamOutbox(outputs)
        mailbox = self._mailbox()
        trace_context = self.telemetry.carrier(metadata) if self.telemetry is not None else {}
        for seq in seqs:
            seq.trace_context = trace_context  # the gateway's traceparent: worker spans join its trace
            seq.on_output = lambda out: mailbox.post(outputs.put_nowait, out)
            seq.stream_interval_s = interval_s
        unfinished = set(by_id)  # choices still generating
        started: set[str] = set()  # choices whose first chunk went out
        usages: list[tuple[Sequence, Usage]] = []
        reason, error = "cancelled", None  # until the engine says otherwise
        self.num_active_streams += 1
        for seq in seqs:
            self.loop.add(seq)
        try:
            while unfinished:
                out = await outbox.next()
                if out.invalid_request is not None:  # refused on the engine thread (e.g. a duplicate id)
                    unfinished.discard(out.seq_id)
                    reason, error = "error", out.invalid_request
                    raise StreamFailure(grpc.StatusCode.INVALID_ARGUMENT, out.invalid_request)
                if out.error is not None:
                    unfinished.discard(out.seq_id)
                    reason, error = "error", out.error
                    raise StreamFailure(grpc.StatusCode.INTERNAL, out.error)
                seq = by_id[out.seq_id]
                total = None
                if out.is_finished:
                    unfinished.discard(out.seq_id)
                    reason = out.finish_reason or reason
                    if out.usage is not None:
                        usages.append((seq, out.usage))
                    if not unfinished and len(seqs) > 1:
                        total = total_usage(usages)
                chunk = to_chunk(out, self.tokenizer, seq, is_first=seq.seq_id not in started, usage=total)
                if unfinished and chunk.HasField("usage"):
                    chunk.ClearField("usage")  # usage is the request's, on the stream's last chunk only
                if not started:
                    chunk.prompt_tokens = sum(s.num_prompt_tokens for s in seqs if s.prompt_leader is None)
                started.add(seq.seq_id)
                yield chunk
        finally:
            self.num_active_streams -= 1
            for seq_id in unfinished:
                self.loop.abort(seq_id)
            if self.telemetry is not None:
                end = StreamEnd(received_s=received_s, ended_s=time.time(), reason=reason,
                                endpoint=request.endpoint, batch_id=request.batch_id, worker_id=self.worker_id,
                                error=error)
                for seq in seqs:
                    self.telemetry.stream_ended(seq, end)

    def _mailbox(self) -> LoopMailbox:
        """The engine thread's way into this servicer's event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        if self._loop_mailbox is None or self._loop_mailbox.loop is not loop:
            self._loop_mailbox = LoopMailbox(loop)
            self.loop.on_outputs_sent = self._loop_mailbox.flush
        return self._loop_mailbox

    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext) -> pb.AbortResponse:
        seq_ids = self.loop.live_ids_of(request.request_id)  # every choice of the request
        for seq_id in seq_ids:
            self.loop.abort(seq_id)
        return pb.AbortResponse(found=bool(seq_ids))

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReport:
        # A failed engine's last snapshot is frozen: say it takes nothing, as a draining worker does.
        return to_load_report(self.loop.load, self.max_num_seqs, self.is_draining or self.loop.fatal_error is not None)

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        return pb.InfoResponse(model=self.model_name, max_model_len=self.limits.max_model_len,
                               block_size=self.block_size, vocab_size=self.limits.vocab_size,
                               worker_id=self.worker_id, has_session=True)
