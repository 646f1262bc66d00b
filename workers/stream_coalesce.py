"""Coalescing a stream's outputs into fewer gRPC messages: when the reader has fallen behind,
and, where the lane asks for it, to pace a stream.

The engine produces one output per sequence per step. When the servicer's event loop (or
the gateway behind it) is slower than the engine, for instance at 32 streams on 2 cores,
outputs queue up, and sending each as its own message costs a serialisation, a write and a
gateway-side parse and SSE event per token: CPU taken from the engine, on the same cores.

The rule: take what is already queued, never wait for more. A token the reader could take
now is never held back to fill a chunk; a reader that keeps up gets one token per message,
exactly as before. Outputs that end the stream with an error stay on their own, so the
servicer still aborts with the right status after delivering every token before them.

Pacing (`StreamPacer`, the lane's `stream_interval_ms`): after a stream's first output, one
message at most per interval; outputs made meanwhile are held and leave together, each
held at most one interval, and the final output is never held. That trades a bounded delay
per token, which the lane's owner chose, for fewer messages: each costs a serialisation and
a write here, a parse and an SSE event in the gateway and a read in the client, all on
cores the model needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from workers.engine.outputs import RequestOutput


class Tick:
    """A pacing timer's wake-up (TICK), queued behind a stream's outputs: what is held may be due."""


TICK = Tick()


def is_mergeable(out: RequestOutput) -> bool:
    """Error outputs travel alone: they end the call with a status, not a chunk."""
    return out.error is None and out.invalid_request is None


def merge(outputs: Sequence[RequestOutput]) -> RequestOutput:
    """Consecutive outputs of one sequence as one: tokens, text and logprobs concatenated in
    order; the finish reason and usage are the last one's (only the last can carry them)."""
    if not outputs:
        raise ValueError("merge needs at least one output")
    if len(outputs) == 1:
        return outputs[0]
    first, last = outputs[0], outputs[-1]
    if any(o.seq_id != first.seq_id for o in outputs):
        raise ValueError("merge takes outputs of one sequence only")
    if not all(is_mergeable(o) for o in outputs):
        raise ValueError("error outputs are never merged")
    if any(o.is_finished for o in outputs[:-1]):
        raise ValueError("only the last merged output may finish the stream")
    return RequestOutput(
        seq_id=first.seq_id,
        token_ids=[t for o in outputs for t in o.token_ids],
        text="".join(o.text for o in outputs),
        finish_reason=last.finish_reason,
        usage=last.usage,
        logprobs=[lp for o in outputs for lp in o.logprobs],
        prompt_logprobs=next((o.prompt_logprobs for o in outputs if o.prompt_logprobs is not None), None),
    )


def take_ready(queue: asyncio.Queue[RequestOutput | Tick], first: RequestOutput,
               max_outputs: int = 64) -> tuple[RequestOutput, RequestOutput | Tick | None]:
    """`first` plus whatever is already waiting behind it in `queue`, merged; never awaits.

    Returns the merged output and, when an error output, another sequence's output (the
    choices of an n > 1 request share one queue) or a pacing TICK was taken off the
    queue behind mergeable ones, that item: the caller handles it next, after the merge.
    Nothing is taken after a finishing output. `max_outputs` bounds one message's size."""
    if not is_mergeable(first) or first.is_finished:
        return first, None
    taken = [first]
    while len(taken) < max_outputs and not queue.empty():
        nxt = queue.get_nowait()
        if isinstance(nxt, Tick) or not is_mergeable(nxt) or nxt.seq_id != first.seq_id:
            return merge(taken), nxt
        taken.append(nxt)
        if nxt.is_finished:
            break
    return merge(taken), None


class StreamPacer:
    """One stream's outputs, at most one message per `interval_s` after the first.

    `offer` each output as it comes; it returns what to send now, in order (held outputs
    merged with it), or nothing while it holds. While it holds, the caller arranges a call
    to `flush` after `wait_s()` (a timer): the held outputs leave then, if no output came to
    take them along first. One sequence's outputs only (a request of one choice)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._held: list[RequestOutput] = []
        self._last_sent: float | None = None

    @property
    def is_holding(self) -> bool:
        return bool(self._held)

    def offer(self, out: RequestOutput) -> list[RequestOutput]:
        now = self._clock()
        if not is_mergeable(out):  # an error ends the stream: what was held goes first, then it
            return [*self._release(now), out]
        self._held.append(out)
        if self._last_sent is None or out.is_finished or now - self._last_sent >= self.interval_s:
            return self._release(now)
        return []

    def wait_s(self) -> float:
        """Seconds until the held outputs are due (0: now)."""
        if self._last_sent is None:
            return 0.0
        return max(0.0, self._last_sent + self.interval_s - self._clock())

    def flush(self) -> list[RequestOutput]:
        """The held outputs, merged, if they are due; nothing otherwise (an early tick)."""
        if not self._held or self.wait_s() > 0:
            return []
        return self._release(self._clock())

    def _release(self, now: float) -> list[RequestOutput]:
        if not self._held:
            return []
        out = merge(self._held)
        self._held = []
        self._last_sent = now
        return [out]


class StreamOutbox:
    """A stream's outputs as the messages to send, in order: what is already queued merged
    (take_ready), paced when `interval_s` > 0 (StreamPacer, with a timer that queues TICK
    while outputs are held). The servicer's one source of what to send next."""

    def __init__(self, queue: asyncio.Queue[RequestOutput | Tick], interval_s: float) -> None:
        self._queue = queue
        self._pacer = StreamPacer(interval_s) if interval_s > 0 else None
        self._held: RequestOutput | Tick | None = None  # an item found behind a merge: handled next
        self._timer: asyncio.TimerHandle | None = None

    async def next(self) -> list[RequestOutput]:
        """Waits for the next item; returns what to send now (possibly nothing yet)."""
        item = self._held if self._held is not None else await self._queue.get()
        self._held = None
        if isinstance(item, Tick):  # the pacing timer: what is held may be due
            self._timer = None
            ready = self._pacer.flush() if self._pacer is not None else []
        else:
            out, self._held = take_ready(self._queue, item)
            ready = self._pacer.offer(out) if self._pacer is not None else [out]
        if self._pacer is not None and self._pacer.is_holding and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._pacer.wait_s(), self._queue.put_nowait, TICK)
        return ready

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
