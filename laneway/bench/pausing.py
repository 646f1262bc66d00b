"""Only the system under test runs: the others' processes are paused (SIGSTOP) meanwhile.

`laneway bench serve` starts every system up front. Idle servers still wake: a gateway
polls its worker's load and ticks its dispatcher, vLLM's engine core and API server poll,
each for a few percent of a core. On 2 cores every wake-up takes a time slice from one of
the measured system's OpenMP threads, and every other thread of the team then waits at
the next barrier. Pausing whole process groups (each
Proc is its own session) keeps the servers' state, sockets and loaded weights; SIGCONT
resumes them where they were.
"""

from __future__ import annotations

import os
import signal

from laneway.procs import Proc


class Families:
    """The bench's processes, by the system family they serve (Laneway's worker and gateways
    are one): started, paused, resumed and stopped here."""

    def __init__(self) -> None:
        self._procs: dict[str, list[Proc]] = {}
        self._started: list[Proc] = []  # in start order, for stopping in reverse
        self.running: str | None = None  # the one family `only` left running; None otherwise

    def start(self, family: str, proc: Proc) -> Proc:
        self._started.append(proc.start())
        self._procs.setdefault(family, []).append(proc)
        return proc

    def only(self, family: str | None) -> None:
        """Resume `family` (in the order its processes started: a worker before its gateways,
        so no gateway wakes to a silent worker) and pause every other one; None pauses all."""
        self.running = family
        for name, procs in self._procs.items():
            if name != family:
                for proc in procs:
                    _signal(proc, signal.SIGSTOP)
        for proc in self._procs.get(family or "", []):
            _signal(proc, signal.SIGCONT)

    def resume_all(self) -> None:
        self.running = None
        for procs in self._procs.values():
            for proc in procs:
                _signal(proc, signal.SIGCONT)

    def stop_all(self) -> None:
        """Resume, then stop, the last started first (a paused process takes its SIGTERM only
        once resumed)."""
        self.resume_all()
        for proc in reversed(self._started):
            proc.stop()


def _signal(proc: Proc, sig: int) -> None:
    if proc.popen is not None and proc.popen.poll() is None:
        try:
            os.killpg(proc.popen.pid, sig)
        except ProcessLookupError:  # exited between the poll and the signal
            pass
