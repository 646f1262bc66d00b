"""Keeps `laneway serve`'s child processes running: its workers and its private Redis.

A child that exits is started again after a backoff that doubles with each crash (from
MIN_BACKOFF_S to MAX_BACKOFF_S) and starts over once a child has run STABLE_S. Each child
has its own clock, so one in a crash loop never delays another's restart. Children keep
their identity across restarts: a worker its port (the gateway's pool refresh readmits
it once its health check passes), Redis its port and AOF file (its data comes back).

The watch runs on one thread. Children that die with their parent (PR_SET_PDEATHSIG) are
tied to the *thread* that started them, so a restarted child belongs to this thread, which
runs until `stop()`, and one child's failed start never ends it.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("laneway.serve")
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0  # a child that ran this long before dying crashed anew: its backoff starts over
POLL_S = 0.25


class Child(Protocol):
    @property
    def name(self) -> str:
        """For logs: 'worker on port 50051', 'Redis on port 6379'."""
        ...

    @property
    def is_running(self) -> bool: ...

    @property
    def exit_code(self) -> int | None:
        """How the last run ended (None while running or never started)."""
        ...

    def start(self) -> object:
        """Start it; raise if it cannot start (the supervisor tries again after a backoff)."""
        ...

    def stop(self) -> None: ...


class PopenChild:
    """What every Child that runs one subprocess reports the same way: from its Popen."""

    proc: subprocess.Popen | None = None

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None


@dataclass
class _Watched:
    child: Child
    backoff_s: float = MIN_BACKOFF_S
    started_at: float = 0.0
    restart_at: float | None = None  # set while a restart waits out its backoff
    num_restarts: int = 0


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self._watched = [_Watched(c) for c in children]
        self._stop = threading.Event()
        self._lock = threading.Lock()  # stop() never races a restart into an orphan
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start the children that are not running yet (in order), then watch them all."""
        now = time.monotonic()
        for w in self._watched:
            if not w.child.is_running:
                w.child.start()
            w.started_at = now
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, then stop the children in reverse order (workers before Redis)."""
        self._stop.set()
        with self._lock:
            for w in reversed(self._watched):
                w.child.stop()

    def num_restarts(self, child: Child) -> int:
        return next(w.num_restarts for w in self._watched if w.child is child)

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            with self._lock:
                if self._stop.is_set():
                    return
                for w in self._watched:
                    try:
                        self._check(w, time.monotonic())
                    except Exception:  # this thread must outlive any one child's trouble
                        log.exception("supervising %s failed; trying again", w.child.name)

    def _check(self, w: _Watched, now: float) -> None:
        if w.restart_at is None:
            if w.child.is_running:
                return
            if now - w.started_at >= STABLE_S:
                w.backoff_s = MIN_BACKOFF_S
            w.restart_at = now + w.backoff_s
            log.error("%s exited with %s; restarting in %.0fs", w.child.name, w.child.exit_code, w.backoff_s)
        elif now >= w.restart_at:
            w.restart_at = None
            w.backoff_s = min(MAX_BACKOFF_S, w.backoff_s * 2)
            w.num_restarts += 1
            w.started_at = now
            log.warning("restarting %s (restart %d)", w.child.name, w.num_restarts)
            try:
                w.child.start()
            except Exception as exc:  # e.g. Redis that does not answer: the next check sees it down
                log.error("%s did not start: %s", w.child.name, exc)
