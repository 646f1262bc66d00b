"""The worker's side of a Session call: many Generate streams on one call (worker.proto).

Every request opened on a session runs as a task of its own over the same stream code as
Generate (`OpenStream`: chunks out, `StreamFailure` for what Generate would abort with).
Its chunks go to the session's outbox, and the call sends whatever the outbox holds as one
batch. The engine thread hands a step's outputs over together (workers/loop_mailbox.py), so
the streams' tasks all run before the sender does, and one step that advances 32 streams
leaves as one message instead of 32: the cost that a message has on both ends (a write, a
wake-up of the gateway's event loop, a read) is paid once per step instead of once per
token.

A cancel from the caller cancels its stream's task, which is what a cancelled Generate call
does. When the caller closes its side, the open streams still finish, then the call ends.
When the call itself ends (the gateway went away), every stream on it is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable

import grpc

from laneway_proto import worker_pb2 as pb
from workers.wire import UndecodableRequest, decode_generate_request

log = logging.getLogger(__name__)

# One batch stays well under gRPC's default 4 MiB message limit, whatever its chunks carry
# (an echoed prompt, prompt logprobs); a bigger backlog leaves in several batches.
MAX_BATCH_BYTES = 1 << 20


class StreamFailure(Exception):
    """A stream ends with this status: Generate aborts its call with it, a session sends it
    as the stream's last event."""

    def __init__(self, code: grpc.StatusCode, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_code = error_code


Metadata = Iterable[tuple[str, str | bytes]]
OpenStream = Callable[[pb.GenerateRequest | UndecodableRequest, Metadata], AsyncGenerator[pb.GenerateChunk, None]]


class _Outbox:
    """Events waiting to leave, and a wake-up for the sender."""

    def __init__(self) -> None:
        self.events: list[pb.SessionEvent] = []
        self.changed = asyncio.Event()

    def put(self, event: pb.SessionEvent) -> None:
        self.events.append(event)
        self.changed.set()

    def take(self) -> list[pb.SessionEvent]:
        """What is waiting, up to MAX_BATCH_BYTES (always at least one event)."""
        size, n = 0, 0
        for n, event in enumerate(self.events, start=1):
            size += event.ByteSize()
            if size > MAX_BATCH_BYTES and n > 1:
                n -= 1
                break
        taken, self.events = self.events[:n], self.events[n:]
        if not self.events:
            self.changed.clear()
        return taken


def failure_event(tag: str, failure: StreamFailure) -> pb.SessionEvent:
    return pb.SessionEvent(tag=tag, last=True, status_code=failure.code.value[0], status_message=failure.message,
                           error_code=failure.error_code or "")


async def run_session(requests: AsyncIterator[pb.SessionRequest | UndecodableRequest], open_stream: OpenStream,
                      draining: asyncio.Event | None = None) -> AsyncGenerator[pb.SessionBatch, None]:
    """The batches a Session call sends for the requests its caller sends. Once `draining` is
    set, the call ends as soon as no stream is open on it (new ones are refused meanwhile, as
    Generate refuses them): an idle session must not hold a draining worker's shutdown up for
    its whole grace period. A message that is not a SessionRequest ends the call at once with
    StreamFailure(INVALID_ARGUMENT), its streams cancelled."""
    outbox = _Outbox()
    streams: dict[str, asyncio.Task[None]] = {}
    reading = True
    closing = False
    refused: str | None = None  # why the caller's last message could not be read

    async def watch_drain(event: asyncio.Event) -> None:
        nonlocal closing
        await event.wait()
        closing = True
        outbox.changed.set()

    async def pump(tag: str, request: pb.GenerateRequest | UndecodableRequest, metadata: Metadata) -> None:
        try:
            async with contextlib.aclosing(open_stream(request, metadata)) as chunks:
                async for chunk in chunks:
                    outbox.put(pb.SessionEvent(tag=tag, chunk=chunk))
            outbox.put(pb.SessionEvent(tag=tag, last=True))
        except StreamFailure as failure:
            outbox.put(failure_event(tag, failure))
        except Exception:  # a bug in one stream's code fails that stream alone, as Generate's would
            log.exception("session stream %s failed", tag)
            outbox.put(failure_event(tag, StreamFailure(grpc.StatusCode.INTERNAL, "stream failed")))
        finally:
            if streams.get(tag) is asyncio.current_task():
                del streams[tag]
            outbox.changed.set()  # the sender may be waiting for the last stream to end

    async def read() -> None:
        nonlocal reading, refused
        try:
            async for msg in requests:
                if isinstance(msg, UndecodableRequest):
                    refused = msg.reason
                    return
                kind = msg.WhichOneof("kind")
                if kind == "open":
                    tag = msg.open.tag
                    if tag in streams:
                        outbox.put(failure_event(tag, StreamFailure(
                            grpc.StatusCode.INVALID_ARGUMENT, f"session tag {tag!r} is already open")))
                        continue
                    request = decode_generate_request(msg.open.request)
                    streams[tag] = asyncio.create_task(pump(tag, request, list(msg.open.metadata.items())))
                elif kind == "cancel":
                    task = streams.pop(msg.cancel, None)
                    if task is not None:
                        task.cancel()  # its stream's cleanup aborts the sequences, as a cancelled call's does
        finally:
            reading = False
            outbox.changed.set()

    reader = asyncio.create_task(read())
    drain_watch = asyncio.create_task(watch_drain(draining)) if draining is not None else None
    try:
        while ((reading and not closing) or streams or outbox.events) and refused is None:
            await outbox.changed.wait()
            if outbox.events:
                yield pb.SessionBatch(events=outbox.take())
            elif (not reading or closing) and not streams:
                break
            else:
                outbox.changed.clear()
        if refused is not None:  # its streams are cancelled on the way out
            raise StreamFailure(grpc.StatusCode.INVALID_ARGUMENT,
                                f"session message is not a laneway.worker.v1.SessionRequest: {refused}")
        if not closing:
            await reader  # raises what ended the caller's side abnormally
    finally:
        reader.cancel()
        if drain_watch is not None:
            drain_watch.cancel()
        tasks = list(streams.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(reader, *tasks, *([drain_watch] if drain_watch else []), return_exceptions=True)
