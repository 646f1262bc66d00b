"""Handing the engine thread's outputs to the servicer's event loop, one wake-up per step.

`loop.call_soon_threadsafe` writes to the loop's self-pipe on every call: at 32 streams that
is 32 writes and as many wake-ups of the event loop for one engine step, and the loop may
wake for the first before the rest are posted. The engine thread posts a step's outputs
here and flushes once it has handed over all of them (EngineLoop.on_outputs_sent): one
drain then delivers the whole step, in the order posted, so every stream's task runs before
a Session (workers/session.py) sends, and the step leaves as one batch.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class LoopMailbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[Callable[[Any], object], Any]] = []
        self._drain_pending = False

    def post(self, fn: Callable[[Any], object], arg: Any) -> None:
        """From any thread: fn(arg) is to run on the loop at the next flush, after what was posted before."""
        with self._lock:
            self._items.append((fn, arg))

    def flush(self) -> None:
        """From any thread: run everything posted so far on the loop, in one callback."""
        with self._lock:
            if not self._items or self._drain_pending:
                return
            self._drain_pending = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed (shutdown): nobody is left to read these
            pass

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._drain_pending = False
        for fn, arg in items:
            fn(arg)
