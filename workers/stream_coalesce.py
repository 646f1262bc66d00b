"""Coalescing a stream's queued outputs into fewer gRPC messages when the reader has fallen behind.

The engine hands over one output per sequence per step (or, on a paced lane, what its pacer
released: workers/engine/stream_pacing.py). When the servicer's event loop (or the gateway
behind it) is slower than the engine, for instance at 32 streams on 2 cores, outputs queue
up, and sending each as its own message costs a serialisation, a write and a gateway-side
parse and SSE event per token: CPU taken from the engine, on the same cores.

The rule: take what is already queued, never wait for more. A token the reader could take
now is never held back to fill a chunk; a reader that keeps up gets one output per message,
exactly as the engine released it. Outputs that end the stream with an error stay on their
own, so the servicer still aborts with the right status after delivering every token
before them.
"""

from __future__ import annotations

import asyncio

from workers.engine.outputs import RequestOutput, is_mergeable, merge


def take_ready(queue: asyncio.Queue[RequestOutput], first: RequestOutput,
               max_outputs: int = 64) -> tuple[RequestOutput, RequestOutput | None]:
    """`first` plus whatever is already waiting behind it in `queue`, merged; never awaits.

    Returns the merged output and, when an error output or another sequence's output (the
    choices of an n > 1 request share one queue) was taken off the queue behind mergeable
    ones, that output: the caller handles it next, after the merge. Nothing is taken after
    a finishing output. `max_outputs` bounds one message's size."""
    if not is_mergeable(first) or first.is_finished:
        return first, None
    taken = [first]
    while len(taken) < max_outputs and not queue.empty():
        nxt = queue.get_nowait()
        if not is_mergeable(nxt) or nxt.seq_id != first.seq_id:
            return merge(taken), nxt
        taken.append(nxt)
        if nxt.is_finished:
            break
    return merge(taken), None


class StreamOutbox:
    """A stream's outputs as the messages to send, in order: what is already queued merged
    (take_ready). The servicer's one source of what to send next."""

    def __init__(self, queue: asyncio.Queue[RequestOutput]) -> None:
        self._queue = queue
        self._held: RequestOutput | None = None  # an output found behind a merge: handled next

    async def next(self) -> RequestOutput:
        """Waits for the next output; returns it with what is queued behind it, merged."""
        item = self._held if self._held is not None else await self._queue.get()
        out, self._held = take_ready(self._queue, item)
        return out
