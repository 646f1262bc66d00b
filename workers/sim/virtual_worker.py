"""The worker on a virtual clock: the real Scheduler and BlockManager, step times from a
cost model, no sleeping, no threads, no gRPC. One simulated second costs microseconds
per step, so a plan can replay minutes of traffic for many worker counts.

Each iteration is the engine's own three verbs: schedule, "run" (advance the clock by
the cost model's time for this step's shape), postprocess (with a dummy token per
sampling sequence). Requests join the scheduler when the clock passes their arrival.
What it does not model: the gateway's admission and 429s (a plan checks budgets, it does
not shed load), detokenization and network time.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.request_error import InvalidRequest
from workers.engine.scheduler import Scheduler
from workers.engine.sequence import LanePolicy, SamplingParams, Sequence
from workers.engine.step_shape import StepCost, shape_of

_TOKEN = 97  # what every simulated step samples; ids mean nothing here


@dataclass(frozen=True)
class SimRequest:
    at_s: float  # when the client sent it
    endpoint: str
    prompt_tokens: int
    max_tokens: int
    lane: LanePolicy = LanePolicy()
    dispatch_delay_s: float = 0.0  # held in the gateway before reaching the worker (batch window)
    max_queue_wait_s: float | None = None  # the lane's deadline, as the gateway sets it
    prefix_key: str | None = None  # requests with the same key share their first `prefix_tokens`
    prefix_tokens: int = 0
    user: int = -1  # the closed-loop user that sent it (-1: open loop)


@dataclass
class SimOutcome:
    request: SimRequest
    first_token_s: float | None = None
    finish_s: float | None = None
    num_output_tokens: int = 0
    num_preemptions: int = 0
    num_cached_tokens: int = 0
    rejected: str | None = None  # why the worker would refuse it (it could never fit)

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.request.at_s


@dataclass
class SimRun:
    outcomes: list[SimOutcome]
    tbt_s: dict[str, array] = field(default_factory=dict)  # endpoint -> every gap between its tokens
    end_s: float = 0.0  # virtual time when the simulation stopped
    busy_s: float = 0.0  # virtual time spent in steps
    num_steps: int = 0
    sum_batch_size: int = 0  # over steps, for the mean batch
    num_preemptions: int = 0
    peak_kv_usage: float = 0.0
    stopped_early: bool = False  # hit the horizon with work left
    step_end_s: array = field(default_factory=lambda: array("d"))  # per step: when it ended
    step_tokens: array = field(default_factory=lambda: array("l"))  # per step: tokens it sampled

    def tokens_per_s(self, start_s: float, end_s: float) -> float:
        """Sampled tokens per second in [start_s, end_s), in-flight requests included."""
        n = sum(k for t, k in zip(self.step_end_s, self.step_tokens) if start_s <= t < end_s)
        return n / (end_s - start_s) if end_s > start_s else 0.0

    @property
    def mean_batch_size(self) -> float:
        return self.sum_batch_size / self.num_steps if self.num_steps else 0.0


class RequestSource(Protocol):
    def next_time(self) -> float | None: ...

    def pop_due(self, now: float) -> list[SimRequest]: ...

    def on_finish(self, outcome: SimOutcome, now: float) -> None: ...


class OpenSource:
    """A fixed list of arrivals (open loop)."""

    def __init__(self, requests: list[SimRequest]) -> None:
        self._reqs = sorted(requests, key=lambda r: r.at_s + r.dispatch_delay_s)
        self._i = 0

    def next_time(self) -> float | None:
        if self._i >= len(self._reqs):
            return None
        r = self._reqs[self._i]
        return r.at_s + r.dispatch_delay_s

    def pop_due(self, now: float) -> list[SimRequest]:
        out = []
        while self._i < len(self._reqs) and self._reqs[self._i].at_s + self._reqs[self._i].dispatch_delay_s <= now:
            out.append(self._reqs[self._i])
            self._i += 1
        return out

    def on_finish(self, outcome: SimOutcome, now: float) -> None:
        pass


class ClosedSource:
    """`concurrency` users, each sending its next request (from `make(user, now)`) as soon as
    its last one ends, until `until_s`."""

    def __init__(self, concurrency: int, make: Callable[[int, float], SimRequest], until_s: float) -> None:
        self._make = make
        self._until = until_s
        self._due: list[SimRequest] = [make(user, 0.0) for user in range(concurrency)]

    def next_time(self) -> float | None:
        return min((r.at_s for r in self._due), default=None)

    def pop_due(self, now: float) -> list[SimRequest]:
        due, self._due = [r for r in self._due if r.at_s <= now], [r for r in self._due if r.at_s > now]
        return due

    def on_finish(self, outcome: SimOutcome, now: float) -> None:
        # A refused request ends its user: resending at once would spin at one instant.
        if now < self._until and outcome.rejected is None:
            self._due.append(self._make(outcome.request.user, now))


@dataclass(frozen=True)
class VirtualWorkerConfig:
    scheduler: SchedulerConfig
    num_blocks: int
    block_size: int = 16
    enable_prefix_caching: bool = True


class VirtualWorker:
    def __init__(self, cost: StepCost, config: VirtualWorkerConfig) -> None:
        self.cost = cost
        self.config = config
        self.scheduler = Scheduler(config.scheduler, BlockManager(config.num_blocks, config.block_size,
                                                                  config.enable_prefix_caching))
        self.now = 0.0
        self._prefixes: dict[str, list[int]] = {}
        self._ids = itertools.count()

    def run(self, source: RequestSource, horizon_s: float) -> SimRun:
        """Until the source is dry and all work is done, or the clock passes horizon_s."""
        sched = self.scheduler
        run = SimRun(outcomes=[])
        live: dict[str, tuple[SimOutcome, float]] = {}  # seq_id -> (outcome, time of its last token)
        while True:
            for req in source.pop_due(self.now):
                outcome = SimOutcome(req)
                run.outcomes.append(outcome)
                seq = self._sequence(req)
                try:
                    sched.check_admissible(seq)  # the real worker's rule, refused as its servicer would
                except InvalidRequest:
                    outcome.rejected = "longer than the model length or the whole KV cache"
                    source.on_finish(outcome, self.now)
                    continue
                sched.add(seq)
                live[seq.seq_id] = (outcome, self.now)
            if not sched.has_unfinished:
                nxt = source.next_time()
                if nxt is None or nxt > horizon_s:
                    break
                self.now = max(self.now, nxt)
                continue
            out = sched.schedule()
            if out.is_empty:  # all waiting and none fits until something arrives (lane caps)
                nxt = source.next_time()
                if nxt is None or nxt > horizon_s:
                    run.stopped_early = True  # stuck: reported as unfinished, not hidden
                    break
                self.now = max(self.now, nxt)
                continue
            dt = self.cost.step_time(shape_of(out))
            self.now += dt
            run.busy_s += dt
            run.num_steps += 1
            run.sum_batch_size += len(out.scheduled)
            run.num_preemptions += len(out.preempted)
            run.peak_kv_usage = max(run.peak_kv_usage, sched.block_manager.usage)
            sampled = {s.seq.seq_id: _TOKEN for s in out.scheduled if s.needs_sample}
            run.step_end_s.append(self.now)
            run.step_tokens.append(len(sampled))
            for seq in sched.postprocess(out, sampled):
                outcome, last = live[seq.seq_id]
                if outcome.first_token_s is None:
                    outcome.first_token_s = self.now
                    outcome.num_cached_tokens = seq.num_cached_tokens
                else:
                    run.tbt_s.setdefault(outcome.request.endpoint, array("d")).append(self.now - last)
                live[seq.seq_id] = (outcome, self.now)
                if seq.status.is_finished:
                    outcome.finish_s = self.now
                    outcome.num_output_tokens = seq.num_output_tokens
                    outcome.num_preemptions = seq.num_preemptions
                    del live[seq.seq_id]
                    source.on_finish(outcome, self.now)
            if self.now > horizon_s:
                run.stopped_early = sched.has_unfinished
                break
        run.end_s = self.now
        return run

    def _sequence(self, req: SimRequest) -> Sequence:
        n = next(self._ids)
        shared: list[int] = []
        if req.prefix_key is not None and req.prefix_tokens:
            if req.prefix_key not in self._prefixes:  # ids of its own, so keys never share blocks
                self._prefixes[req.prefix_key] = [1_000_000 * (len(self._prefixes) + 1)]
            base = self._prefixes[req.prefix_key]
            base.extend(base[0] + i for i in range(len(base), req.prefix_tokens))
            shared = base[: req.prefix_tokens]
        # A token of its own right after the prefix: nothing beyond the prefix matches another prompt.
        own = [-1 - n] + [0] * (req.prompt_tokens - len(shared) - 1)
        deadline = None if req.max_queue_wait_s is None else req.at_s + req.max_queue_wait_s
        return Sequence(f"sim-{n}", shared + own, SamplingParams(max_tokens=req.max_tokens, ignore_eos=True),
                        lane=req.lane, deadline=deadline, arrival_time=req.at_s)
