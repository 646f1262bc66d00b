"""How many long gaps the latency streams' TBT targets still allow.

An endpoint's TBT target is a p95: 95% of the gaps between its streams' tokens must be
shorter. Capping every step at the tightest target (scheduler.TBT_HEADROOM) keeps all of
them shorter, and that has a price under a burst: 32 prompts arriving at once are
prefilled over about nine short steps while the first streams keep their pace, and the last
prompt's first token comes at twice the time the prefill alone takes.

The budget spends a little of what the p95 allows on such bursts. A step may run past the
cap (to the TTFT bound the scheduler keeps anyway) when the long gaps it makes, one per
latency stream it decodes, keep the long gaps among the recent ones under LONG_GAP_SHARE:
far inside the 5% a p95 leaves. It needs MIN_GAPS recent gaps to judge by, so a cold worker
keeps the cap; and only latency prefill waiting for room is worth the spend.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 30.0  # the recent gaps the share is taken over
MIN_GAPS = 500  # fewer recent gaps than this: too few to judge, the cap holds
LONG_GAP_SHARE = 0.02  # of the recent gaps, at most this share may be long


class GapBudget:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._log: deque[tuple[float, int, int]] = deque()  # (when, gaps, long gaps) per step
        self._gaps = 0
        self._long = 0

    def record(self, gaps: int, long: int) -> None:
        """One step's gaps of latency streams with a TBT target, and how many outran it."""
        if gaps <= 0:
            return
        self._log.append((self._clock(), gaps, long))
        self._gaps += gaps
        self._long += long
        self._trim()

    @property
    def recent(self) -> tuple[int, int]:
        """(gaps, long gaps) in the window."""
        self._trim()
        return self._gaps, self._long

    def allows(self, long: int) -> bool:
        """May a step make `long` more long gaps?"""
        self._trim()
        if self._gaps < MIN_GAPS:
            return False
        return self._long + long <= LONG_GAP_SHARE * (self._gaps + long)

    def _trim(self) -> None:
        horizon = self._clock() - WINDOW_S
        while self._log and self._log[0][0] < horizon:
            _, gaps, long = self._log.popleft()
            self._gaps -= gaps
            self._long -= long
