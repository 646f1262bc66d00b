"""Pacing a stream on the engine thread: the lane's `stream_interval_ms`.

After a stream's first output, an output may be held up to one interval, and those made
meanwhile leave with it. That trades a bounded delay per token, which the lane's owner
chose, for fewer hand-offs: each released output wakes the worker's event loop (a
cross-thread call), and costs a serialisation and a write there, a parse and an SSE event in
the gateway and a read in the client, all on cores the model needs. Holding on the engine
thread, rather than in the servicer, is what spares the wake-up: a held token costs the
event loop nothing, and no timer has to wake it later.

The engine thread only looks at a stream when a step ends, so the rule is decided there:
keep holding only if the next step is expected to end (`next_step_s`, the last step's
duration) before the oldest held output has waited an interval; otherwise release now. So
no token waits much more than an interval: only by what the next step takes beyond the
last one's duration (a step that grew, e.g. because a prompt chunk joined it, delays tokens
paced or not). The final output is never held, nor is an error. A live sequence keeps the
engine stepping, so the engine loop asks every pacer holding outputs after each step,
including those of sequences that made nothing in it (preempted ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from workers.engine.outputs import RequestOutput, is_mergeable, merge


class StreamPacer:
    """One sequence's outputs: the first at once, each later one held at most about `interval_s`."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._held: list[RequestOutput] = []
        self._started = False  # the first output went out
        self._held_since = 0.0  # when the oldest held output was offered

    @property
    def is_holding(self) -> bool:
        return bool(self._held)

    def offer(self, out: RequestOutput, next_step_s: float) -> list[RequestOutput]:
        """`out` joins what is held; returns what to send now, in order (nothing: all held)."""
        if not is_mergeable(out):  # an error ends the stream: what was held goes first, then it
            return [*self.release(), out]
        if not self._held:
            self._held_since = self._clock()
        self._held.append(out)
        if not self._started or out.is_finished:
            return self.release()
        return self.due(next_step_s)

    def due(self, next_step_s: float) -> list[RequestOutput]:
        """What is held, merged, if its oldest output would wait past the interval for the next step's end."""
        if self._held and self._clock() + next_step_s < self._held_since + self.interval_s:
            return []
        return self.release()

    def release(self) -> list[RequestOutput]:
        """Everything held, merged, now."""
        if not self._held:
            return []
        out = merge(self._held)
        self._held = []
        self._started = True
        return [out]
