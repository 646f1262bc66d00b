"""The gateway's side of a Session call: every stream this gateway has open on one worker,
on one call (worker.proto: Session; the worker's side is workers/session.py).

A stream opens with a tag and reads its events from a queue of its own; one reader task
takes each batch off the call and hands every event to its stream's queue. A batch is
usually one engine step's output for every stream, so 32 streams cost one gRPC read per step
here instead of 32. When the call ends, every stream still open hears why (`SessionLost`),
as each of their Generate calls would have.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import grpc

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionLost:
    """The call ended under the stream: what a Generate call would have ended with."""

    code: grpc.StatusCode
    details: str


SessionItem = pb.SessionEvent | SessionLost


class WorkerSession:
    def __init__(self, stub: pb_grpc.WorkerStub) -> None:
        self._outgoing: asyncio.Queue[pb.SessionRequest | None] = asyncio.Queue()
        self._streams: dict[str, asyncio.Queue[SessionItem]] = {}
        self._tags = itertools.count()
        self.lost: SessionLost | None = None
        self._call = stub.Session(self._requests())
        self._reader = asyncio.create_task(self._read())

    @property
    def num_open(self) -> int:
        return len(self._streams)

    def open(self, request: pb.GenerateRequest, metadata: Mapping[str, str]) -> tuple[str, asyncio.Queue[SessionItem]]:
        """Opens a stream for `request`: its tag and the queue its events arrive on."""
        tag = str(next(self._tags))
        events: asyncio.Queue[SessionItem] = asyncio.Queue()
        if self.lost is not None:
            events.put_nowait(self.lost)
            return tag, events
        self._streams[tag] = events
        self._outgoing.put_nowait(pb.SessionRequest(open=pb.SessionOpen(
            tag=tag, request=request.SerializeToString(), metadata=dict(metadata))))
        return tag, events

    def close(self, tag: str, cancel: bool) -> None:
        """The stream's reader is done with it; `cancel`: the worker is to stop generating it."""
        if self._streams.pop(tag, None) is not None and cancel and self.lost is None:
            self._outgoing.put_nowait(pb.SessionRequest(cancel=tag))

    async def aclose(self) -> None:
        self._outgoing.put_nowait(None)
        self._call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _requests(self) -> AsyncIterator[pb.SessionRequest]:
        while (msg := await self._outgoing.get()) is not None:
            yield msg

    async def _read(self) -> None:
        lost = SessionLost(grpc.StatusCode.CANCELLED, "session closed")
        try:
            async for batch in self._call:
                for event in batch.events:
                    events = self._streams.get(event.tag)
                    if events is not None:  # else: closed by its reader since; nothing waits for it
                        events.put_nowait(event)
            # The worker ended the call without an error while streams were open: it is going away.
            lost = SessionLost(grpc.StatusCode.UNAVAILABLE, "worker ended the session")
        except grpc.aio.AioRpcError as exc:
            lost = SessionLost(exc.code(), exc.details() or exc.code().name)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a message the reader cannot handle is the session's end, never a hang
            log.exception("session reader failed")
            lost = SessionLost(grpc.StatusCode.UNKNOWN, f"session reader failed: {exc.__class__.__name__}")
        self.lost = lost
        for events in self._streams.values():
            events.put_nowait(lost)
        self._streams.clear()
        self._outgoing.put_nowait(None)  # ends the request side's generator: nothing waits on a dead call
