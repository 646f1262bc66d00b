"""A lane's batch window: fixed, or tuned to spend exactly the latency budget it is given.

An auto window widens multiplicatively while recent TTFT p95 leaves slack against the
tightest budget of the endpoints it serves, and narrows multiplicatively as p95 nears
that budget: batches grow as large as the budget allows and no larger. The narrowing step
is larger than the widening one, so an overshoot is given back faster than it was taken
(the AIMD habit of TCP, applied to queue time). Each decision looks only at samples
taken since the previous decision, so one bad burst is not punished twice.
"""

from __future__ import annotations

from lanes.lane import BatchWindow

SLACK_BELOW = 0.60  # p95 under 60% of budget: room to batch more
PRESSURE_ABOVE = 0.85  # p95 over 85% of budget: give queue time back
WIDEN_FACTOR = 1.25
NARROW_FACTOR = 0.5
MIN_WIDEN_STEP_MS = 0.5  # lets a window that starts at 0 ms grow at all
SAMPLES_PER_DECISION = 20  # p95 of 20 samples is their second largest: a real tail, quickly


class WindowController:
    def __init__(self, window: BatchWindow, current_ms: float | None = None) -> None:
        self.window = window
        start = window.min_ms if current_ms is None else current_ms
        self.current_ms = min(window.max_ms, max(window.min_ms, start))
        self._samples: list[tuple[float, float]] = []  # (ttft_ms, budget_ms) since the last decision

    @property
    def is_auto(self) -> bool:
        return self.window.auto

    def retuned(self, window: BatchWindow) -> WindowController:
        """The controller for a reloaded spec: an auto window keeps its place within the new bounds."""
        if window == self.window:
            return self
        return WindowController(window, self.current_ms if window.auto and self.window.auto else None)

    def observe(self, ttft_ms: float, budget_ms: float) -> None:
        if budget_ms <= 0:  # the policy model refuses such a budget when the file loads
            raise ValueError(f"a TTFT budget is positive, got {budget_ms} ms")
        if not self.is_auto:
            return
        self._samples.append((ttft_ms, budget_ms))
        if len(self._samples) >= SAMPLES_PER_DECISION:
            self._decide()

    def _decide(self) -> None:
        ttfts = sorted(t for t, _ in self._samples)
        p95 = ttfts[max(0, -(-len(ttfts) * 95 // 100) - 1)]  # nearest rank
        budget = min(b for _, b in self._samples)
        self._samples.clear()
        if p95 < SLACK_BELOW * budget:
            widened = max(self.current_ms * WIDEN_FACTOR, self.current_ms + MIN_WIDEN_STEP_MS)
            self.current_ms = min(self.window.max_ms, widened)
        elif p95 > PRESSURE_ABOVE * budget:
            self.current_ms = max(self.window.min_ms, self.current_ms * NARROW_FACTOR)
