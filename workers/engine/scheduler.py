"""Iteration-level continuous batching: chunked prefill, lane priorities, preemption by recompute,
fair shares between the tenants of a lane.

The engine loop is schedule() -> model runner -> postprocess(). Not thread-safe: the
engine thread owns the scheduler; other threads hand requests and aborts over a queue.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable

from laneway_proto.error_codes import CONTEXT_LENGTH_EXCEEDED
from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.gap_budget import GapBudget
from workers.engine.lane_caps import LaneLoad, LaneOccupancy, lane_block_ids, lane_has_room, lane_seq_cap
from workers.engine.preemption import may_preempt_to_admit, may_preempt_to_grow, victims_in_order
from workers.engine.prefix_cache import PrefixMatch
from workers.engine.request_error import InvalidRequest
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import LanePolicy, SeqStatus, Sequence
from workers.engine.step_plan import StepPlan
from workers.engine.step_shape import EMPTY_SHAPE, StepCost, StepShape, TokenCount
from workers.engine.stopping import finish_status
from workers.engine.tenant_shares import TenantShares, is_under_share, slot_victim
from workers.engine.waiting_queue import WaitingQueue

# A step may take this share of the tightest TBT target: the target is a p95, and a step's
# real time scatters around its prediction on a shared machine.
TBT_HEADROOM = 0.8
# While a latency lane is active, a step takes at most this share of its TTFT target: a
# request arriving mid-step waits for the step to end, then for its own prefill.
ARRIVAL_STEP_FRACTION = 0.25
LATENCY_MEMORY_S = 60.0  # a latency lane counts as active this long after its last arrival
MIN_URGENT_CHUNK = 16  # tokens the most urgent latency prompt gets however full the step is
# While a fair lane is shared (two or more of its tenants arrived within FAIR_MEMORY_S), a
# step carries its running streams plus about this many prefill tokens: a tenant's request
# arriving mid-step waits for one short step, not for another tenant's long prompt chunk.
SHARED_LANE_PREFILL_TOKENS = 128
FAIR_MEMORY_S = 30.0


class Scheduler:
    def __init__(self, config: SchedulerConfig, block_manager: BlockManager, cost: StepCost | None = None) -> None:
        self.config = config
        self.max_model_len = config.context_length  # an undecided "auto" fails here, at build time
        self.block_manager = block_manager
        # Predicted seconds per step (online_cost.py); None: a step costs its tokens.
        self.cost = cost
        self._plan_cost: StepCost = cost if cost is not None else TokenCount()
        self._num_steps = 0
        # Latency lanes seen lately: lane name -> (tightest TTFT target in s, last arrival).
        self._latency_lanes: dict[str, tuple[float, float]] = {}
        # The long gaps the TBT targets (p95s) still allow: spent on bursts of prompts (gap_budget.py).
        self.gap_budget = GapBudget()
        self._bulk_floors: dict[str, float] = {}  # deferrable lane name -> its min_share, as last seen
        # Fair lanes seen lately: lane name -> tenant -> its last arrival (time.time()).
        self._fair_arrivals: dict[str, dict[str, float]] = {}
        self._waiting = WaitingQueue()
        self._running: list[Sequence] = []
        self._suspended: list[Sequence] = []  # fair lanes: set aside for another tenant, KV kept, oldest first
        self._shares = TenantShares()
        # This step's scheduling keys where fair shares reorder a lane (_fair_keys); others: sort_key.
        self._keys: dict[str, tuple[int, float, int]] = {}
        self._seqs: dict[str, Sequence] = {}  # index by id of every unfinished seq
        self._abort_ids: dict[str, None] = {}  # insertion-ordered set

    def use_cost_model(self, cost: StepCost) -> None:
        """Set once at start-up, when the warm-up has measured this machine (warmup.py)."""
        self.cost = cost
        self._plan_cost = cost

    # -- queries -----------------------------------------------------------------------

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """Seqs without a sequence slot: waiting, and suspended (which keep their KV)."""
        return len(self._waiting) + len(self._suspended)

    @property
    def num_queued_prefill_tokens(self) -> int:
        """Tokens still to prefill: all of every waiting seq, the rest of running (and suspended) prefills."""
        waiting = sum(seq.num_uncomputed_tokens for seq in self._waiting)
        return waiting + sum(seq.num_uncomputed_tokens for seq in [*self._running, *self._suspended]
                             if seq.is_prefill)

    @property
    def has_unfinished(self) -> bool:
        return bool(self._seqs)

    @property
    def running(self) -> tuple[Sequence, ...]:
        return tuple(self._running)

    @property
    def waiting(self) -> tuple[Sequence, ...]:
        """In Sequence.sort_key order (fair lanes reorder theirs at each step: _fair_keys)."""
        return tuple(self._waiting)

    @property
    def suspended(self) -> tuple[Sequence, ...]:
        return tuple(self._suspended)

    def tenant_counter(self, lane_name: str, tenant: str) -> float:
        """The tenant's virtual token counter in a fair lane (tenant_shares.py)."""
        return self._shares.lane(lane_name).counter(tenant)

    def get(self, seq_id: str) -> Sequence | None:
        return self._seqs.get(seq_id)

    def max_blocks_needed(self, seq: Sequence) -> int:
        """KV blocks seq holds at its longest. The last token is never computed."""
        final_len = min(self.max_model_len, seq.num_prompt_tokens + seq.sampling.max_tokens)
        return self.block_manager.num_blocks_for(final_len - 1)

    def can_ever_fit(self, seq: Sequence) -> bool:
        """False for a request that could never finish in this cache: reject it at the edge."""
        return self.max_blocks_needed(seq) <= self.block_manager.num_total_blocks

    def check_admissible(self, seq: Sequence) -> None:
        """Raise InvalidRequest for a request this worker could never serve.

        Reads only sizes fixed at start-up, so the servicer calls it at the edge too, off the
        engine thread; `add` calls it again, because the engine must never trust its caller."""
        if seq.num_tokens >= self.max_model_len:  # room for at least one generated token
            raise InvalidRequest(f"prompt has {seq.num_tokens} tokens; this worker's max_model_len is "
                                 f"{self.max_model_len} (prompt must be shorter to leave room for output)",
                                 CONTEXT_LENGTH_EXCEEDED)
        if not self.can_ever_fit(seq):
            raise InvalidRequest(f"request needs {self.max_blocks_needed(seq)} KV blocks at full length; "
                                 f"this worker has {self.block_manager.num_total_blocks}", CONTEXT_LENGTH_EXCEEDED)

    def lane_occupancy(self) -> dict[str, LaneOccupancy]:
        queued = self._queued()
        names = {seq.lane.name for seq in self._running} | {seq.lane.name for seq in queued}
        return {
            name: LaneOccupancy(
                num_running=sum(1 for s in self._running if s.lane.name == name),
                num_waiting=sum(1 for s in queued if s.lane.name == name),
                num_blocks=len(lane_block_ids(name, self._running)),
            )
            for name in sorted(names)
        }

    def lane_loads(self) -> list[LaneLoad]:
        """The backlog by lane, with the predicted wait before a new request of each lane
        starts its prefill here: the prefill of its own lane and every more urgent latency
        lane (seconds by the cost model; 0 without one). Deferrable work of lower lanes does
        not count: it sits out or is preempted when a more urgent request arrives."""
        queued = self._queued()
        seqs = [*self._running, *queued]
        lanes = {s.lane.name: s.lane for s in seqs}
        for name in self._latency_lanes:
            lanes.setdefault(name, LanePolicy(name=name, preemptible=False))
        prefill_s = {name: 0.0 for name in lanes}
        if self.cost is not None:
            for s in seqs:
                if s.num_uncomputed_tokens > 1:
                    prefill_s[s.lane.name] += self.cost.step_time(
                        StepShape.chunk(s.num_computed_tokens, s.num_uncomputed_tokens))
        loads = []
        for name, lane in sorted(lanes.items(), key=lambda item: (item[1].priority, item[0])):
            ahead = [other for other in lanes.values() if other.name == name or (
                other.priority <= lane.priority and not other.is_deferrable)]
            loads.append(LaneLoad(
                name=name, priority=lane.priority, preemptible=lane.preemptible,
                num_running=sum(1 for s in self._running if s.lane.name == name),
                num_waiting=sum(1 for s in queued if s.lane.name == name),
                num_queued_prefill_tokens=sum(s.num_uncomputed_tokens for s in seqs
                                              if s.lane.name == name and s.num_uncomputed_tokens > 1),
                predicted_wait_s=sum(prefill_s[other.name] for other in ahead)))
        return loads

    def num_bulk_slots(self) -> int:
        """More deferrable sequences this worker could decode per step now, beside its latency
        work, within the step-time budget (and its free sequence slots). The time a deferrable
        lane may use is what latency decodes leave, and never less than its min_share slice,
        so a lane with a floor keeps getting work dispatched to it (scheduler rule, pass 2)."""
        free_slots = max(0, self.config.max_num_seqs - len(self._running) - self.num_waiting)
        limit = self.step_time_budget()
        if self.cost is None or math.isinf(limit):
            return free_slots
        latency = [s for s in self._running if not s.lane.is_deferrable]
        deferrable = [s for s in self._seqs.values() if s.lane.is_deferrable]
        shape = sum((StepShape.chunk(s.num_computed_tokens, 1) for s in latency), EMPTY_SHAPE)
        base = self.cost.step_time(shape)
        context = max((s.num_tokens for s in deferrable), default=512)
        per_seq = max(self.cost.step_time(shape + StepShape.chunk(context, 1)) - base, 1e-9)
        floor = max(self._bulk_floors.values(), default=0.0) * limit
        room = math.floor(max(limit - base, floor) / per_seq + 1e-9) - len(deferrable)
        return max(0, min(free_slots, room))

    # -- commands from outside ---------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        """Queue a new request; InvalidRequest (nothing queued) for one this worker cannot take.

        SamplingParams and LanePolicy validate themselves; what depends on this worker (its
        context length, its KV pool, the ids it is running) is checked here."""
        if seq.seq_id in self._seqs:  # ids come from the caller: a clash is input, not a bug
            raise InvalidRequest(f"duplicate request_id {seq.seq_id!r}: a request with this id is still "
                                 "running on this worker")
        self.check_admissible(seq)
        # A new Sequence from the wire is always WAITING and empty; anything else is a bug here.
        assert seq.status == SeqStatus.WAITING, f"{seq.seq_id} added as {seq.status.name}"
        assert seq.num_computed_tokens == 0 and not seq.block_table, f"{seq.seq_id} added with KV"
        self._seqs[seq.seq_id] = seq
        self._waiting.add(seq)
        self._shares.arrive(seq)
        if not seq.lane.is_deferrable and seq.targets.ttft_s is not None:
            self._latency_lanes[seq.lane.name] = (seq.targets.ttft_s, seq.arrival_time)
        if seq.lane.is_deferrable:
            self._bulk_floors[seq.lane.name] = seq.lane.min_share
        if seq.lane.fair_tenants:
            self._fair_arrivals.setdefault(seq.lane.name, {})[seq.tenant] = seq.arrival_time

    def abort(self, seq_id: str) -> bool:
        """Mark for abort; the next schedule() frees it and reports it in `aborted`."""
        if seq_id not in self._seqs:
            return False
        self._abort_ids[seq_id] = None
        return True

    def finish(self, seq: Sequence, status: SeqStatus) -> None:
        """End seq now (e.g. a stop string matched) and free its blocks."""
        assert status.is_finished, f"finish() with unfinished status {status.name}"
        assert self._seqs.get(seq.seq_id) is seq, f"{seq.seq_id} is not an unfinished sequence here"
        if seq.status == SeqStatus.RUNNING:
            self._running.remove(seq)
        elif seq.status == SeqStatus.SUSPENDED:
            self._suspended.remove(seq)
        else:
            self._waiting.remove(seq)
        self.block_manager.free(seq)
        seq.status = status
        del self._seqs[seq.seq_id]
        self._shares.leave(seq)

    # -- the step ----------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        # THE RULE. Each sequence has num_computed_tokens (K/V in the cache) and num_tokens
        # (prompt + generated so far). Each step assigns tokens so that the first catches up
        # with the second, within the per-step token budget (max_num_batched_tokens), the cap
        # on sequences (max_num_seqs) and a time budget: the step's predicted time (the
        # calibrated cost model) stays under the tightest TBT target of the streams here
        # (except when latency prompts wait and the long gaps the TBT targets' p95 still
        # allows cover one for every stream decoding: gap_budget.py), and, while latency
        # lanes are active, under a fraction of their TTFT target, so a new arrival never
        # waits behind one long step. Prefill, chunked prefill, prefix-cache
        # hits, recompute after preemption and decode are all this one rule.
        #
        # The n samples of one prompt share its KV blocks through the prefix cache: a sample
        # waits while its prompt_leader computes the prompt's full blocks, then is admitted
        # with a cache hit on them and computes only its last, partial block.
        #
        # Order, each pass taking what the budgets leave:
        #  1. running decodes of latency lanes (not preemptible), all of them: a stream never
        #     skips a step (if they alone exceed the budget, the lanes below get no time);
        #  2. latency prefill by urgency (Sequence.sort_key: priority, earliest TTFT deadline,
        #     arrival): ongoing chunks more urgent than the head of the waiting queue, then
        #     waiting seqs, then the remaining chunks; the most urgent always gets a chunk.
        #     It stops short of the budget by the deferrable lanes' reserve: each lane with
        #     work keeps min_share of the step, so a nightly job still finishes;
        #  3. deferrable (preemptible, bulk) work in the time left, and at least the reserve
        #     (a bounded overshoot when streams alone fill the step): decodes (those that sat
        #     out longest first, so equal priorities take turns), then prefill by urgency.
        # A running deferrable seq that gets no tokens sits the step out and keeps its KV. A
        # prompt longer than the budgets left gets a chunk of what is left. Without a cost
        # model a step costs its tokens, and the same rule reads in tokens.
        #
        # Fair lanes (the policy's `fairness: tenants`; tenant_shares.py) change who fills a
        # lane's places, never the places: the lane's prefill work (waiting seqs and running
        # prompt chunks) keeps the positions its sort keys give it in the order above, and
        # takes them least-served tenant first (virtual token counters; every token scheduled
        # in a fair lane is charged to its tenant). When no slot is free, a waiting seq of a
        # tenant under its share of the lane's slots takes one from a tenant over its share:
        # that tenant's newest running seq is suspended (keeps its KV, gets no tokens) and, if
        # KV is short too, suspended seqs of the lane are preempted for it. Suspended seqs
        # resume at the start of a step, oldest first, into free slots no under-share tenant
        # of their lane waits for; they are preempted first when a seq of their priority or a
        # more urgent one needs blocks to grow. Who may preempt a running seq to grow still
        # reads the sort key alone: an order that moves with the counters would let two seqs
        # take turns evicting each other.
        # While a fair lane is shared (two tenants arrived within FAIR_MEMORY_S), the step's
        # time limit after pass 1 is its running streams plus SHARED_LANE_PREFILL_TOKENS of
        # prefill: one tenant's long prompts go in short chunks, so another tenant's request
        # arriving mid-step waits one short step, then leads the next one.
        output = SchedulerOutput()
        self._apply_aborts(output)
        self._num_steps += 1
        self._resume_suspended()
        self._keys = self._fair_keys()
        limit = self.step_time_budget()
        plan = StepPlan(budget=self.config.max_num_batched_tokens, cost=self._plan_cost, time_limit=math.inf)
        self._schedule_running(plan, decodes=True, select=_is_latency)
        if self.is_fair_lane_shared():
            limit = min(limit, self._plan_cost.step_time(plan.shape + StepShape.chunk(0, SHARED_LANE_PREFILL_TOKENS)))
        reserve = self._deferrable_reserve() * limit if math.isfinite(limit) else 0.0  # inf * 0 is NaN
        plan.time_limit, plan.urgent_grant = limit - reserve, MIN_URGENT_CHUNK
        self._schedule_prefill(plan, select=_is_latency)
        plan.time_limit, plan.urgent_grant = max(limit, plan.predicted_time + reserve), 0
        self._schedule_running(plan, decodes=True, select=_is_deferrable, key=_turn_key)
        self._schedule_prefill(plan, select=_is_deferrable)
        scheduled = list(plan.scheduled.values())
        for item in scheduled:
            item.seq.last_scheduled_step = self._num_steps
        # Decodes first (stable), as the model runner expects.
        output.scheduled = sorted(scheduled, key=lambda s: s.seq.num_uncomputed_tokens != 1)
        output.preempted = plan.preempted
        output.suspended = plan.suspended
        for item in scheduled:  # before postprocess moves num_computed_tokens
            self._shares.charge(item.seq, item.num_new_tokens, is_decode=item.seq.num_uncomputed_tokens == 1)
        output.sat_out = [s for s in self._running if s.lane.is_deferrable and s.seq_id not in plan.scheduled]
        output.time_budget = limit
        assert output.num_batched_tokens <= self.config.max_num_batched_tokens, "token budget exceeded"
        assert len(output.scheduled) <= self.config.max_num_seqs, "sequence cap exceeded"
        return output

    def is_fair_lane_shared(self) -> bool:
        """Have two or more tenants of one fair lane arrived within FAIR_MEMORY_S?"""
        now = time.time()
        for lane, arrivals in list(self._fair_arrivals.items()):
            for tenant in [t for t, seen in arrivals.items() if now - seen > FAIR_MEMORY_S]:
                del arrivals[tenant]
            if not arrivals:
                del self._fair_arrivals[lane]
            elif len(arrivals) >= 2:
                return True
        return False

    def step_time_budget(self) -> float:
        """The next step's time limit in the cost model's units (inf: none binds)."""
        if self.cost is None:
            return float(self.config.max_num_batched_tokens)
        # Waiting streams count too: the step after their prefill is their first gap.
        streams = [s for s in self._seqs.values() if not s.lane.is_deferrable and s.targets.tbt_s is not None]
        limits = [s.targets.tbt_s * TBT_HEADROOM for s in streams]  # type: ignore[operator]  # filtered above
        if limits and self._may_outrun_tbt(streams):
            limits = []  # this step may run long: the TTFT bound below still holds
        now = time.time()
        limits += [ttft_s * ARRIVAL_STEP_FRACTION for ttft_s, seen in self._latency_lanes.values()
                   if now - seen <= LATENCY_MEMORY_S]
        return min(limits, default=math.inf)

    def _may_outrun_tbt(self, streams: list[Sequence]) -> bool:
        """Latency prompts wait for room, and the gap budget covers a long gap for every
        stream already decoding."""
        if not any(_is_latency(s) for s in self._waiting):
            return False
        return self.gap_budget.allows(sum(1 for s in streams if s.status == SeqStatus.RUNNING))

    def record_gaps(self, output: SchedulerOutput, step_s: float) -> None:
        """After a step: the gaps it made for latency streams with a TBT target (a token after
        their first), and how many outran their target."""
        gaps = long = 0
        for item in output.scheduled:
            seq = item.seq
            tbt_s = seq.targets.tbt_s
            if tbt_s is None or seq.lane.is_deferrable or not item.needs_sample or seq.num_output_tokens < 2:
                continue
            gaps += 1
            long += step_s > tbt_s
        self.gap_budget.record(gaps, long)

    def postprocess(self, output: SchedulerOutput, sampled: dict[str, int]) -> list[Sequence]:
        """Account for a finished forward pass; return seqs that got a token or finished."""
        sampling_ids = {s.seq.seq_id for s in output.scheduled if s.needs_sample}
        assert set(sampled) == sampling_ids, (
            f"sampled tokens for {sorted(sampled)}, expected {sorted(sampling_ids)}"
        )
        changed: list[Sequence] = []
        for item in output.scheduled:
            seq = item.seq
            assert seq.status == SeqStatus.RUNNING, f"{seq.seq_id} is {seq.status.name} in postprocess"
            needs_sample = item.needs_sample  # read before num_computed_tokens moves
            seq.num_computed_tokens += item.num_new_tokens
            self.block_manager.mark_computed(seq)
            if not needs_sample:
                continue
            seq.append_token(sampled[seq.seq_id])
            status = finish_status(seq, self.max_model_len)
            if status is not None:
                self.finish(seq, status)
            changed.append(seq)
        return changed

    # -- schedule() parts ----------------------------------------------------------------

    def _apply_aborts(self, output: SchedulerOutput) -> None:
        for seq_id in self._abort_ids:
            seq = self._seqs.get(seq_id)
            if seq is None:  # finished on its own since abort() was called
                continue
            self.finish(seq, SeqStatus.FINISHED_ABORTED)
            output.aborted.append(seq)
        self._abort_ids.clear()

    def _deferrable_reserve(self) -> float:
        """Share of the step kept for deferrable lanes: the sum of the min_share of each
        deferrable lane that has work here (at most 1)."""
        lanes = {s.lane.name: s.lane.min_share for s in self._seqs.values() if s.lane.is_deferrable}
        return min(1.0, sum(lanes.values()))

    def _schedule_prefill(self, plan: StepPlan, select: Callable[[Sequence], bool]) -> None:
        """Prefill work of the selected seqs by urgency: ongoing chunks more urgent than the
        head of the waiting queue, waiting seqs, then the remaining ongoing chunks."""
        head = next((s for s in self._waiting_in_order() if select(s)), None)
        self._schedule_running(plan, decodes=False, select=select,
                               more_urgent_than=self._key(head) if head else None)
        self._schedule_waiting(plan, select)
        self._schedule_running(plan, decodes=False, select=select)

    def _schedule_running(self, plan: StepPlan, decodes: bool, select: Callable[[Sequence], bool],
                          more_urgent_than: tuple[int, float, int] | None = None,
                          key: Callable[[Sequence], tuple] | None = None) -> None:
        stalled: list[Sequence] = []
        for seq in sorted(self._running, key=key or self._key):
            if plan.budget == 0:
                return
            if not select(seq):
                continue
            if more_urgent_than is not None and self._key(seq) >= more_urgent_than:
                break  # sorted: the rest are less urgent too and wait for the waiting queue
            if seq.status != SeqStatus.RUNNING or seq.seq_id in plan.scheduled:
                continue  # preempted earlier in this step, or done in an earlier pass
            assert seq.num_uncomputed_tokens > 0, f"running {seq.seq_id} has nothing to compute"
            if (seq.num_uncomputed_tokens == 1) != decodes:
                continue
            num_new_tokens = plan.max_new_tokens(seq.num_computed_tokens, seq.num_uncomputed_tokens)
            if num_new_tokens == 0:
                continue  # no time left for it: it sits this step out
            if self._reserve_blocks_to_grow(seq, num_new_tokens, plan):
                plan.add(seq, num_new_tokens)
            elif seq.status == SeqStatus.RUNNING:
                stalled.append(seq)
        # A less urgent seq that preempted itself later in the pass may have freed enough.
        for seq in stalled:
            if seq.status != SeqStatus.RUNNING:
                continue  # preempted by a more urgent seq since it stalled
            num_new_tokens = plan.max_new_tokens(seq.num_computed_tokens, seq.num_uncomputed_tokens)
            if num_new_tokens > 0 and self.block_manager.can_append(seq, num_new_tokens):
                self.block_manager.append_slots(seq, num_new_tokens)
                plan.add(seq, num_new_tokens)

    def _reserve_blocks_to_grow(self, seq: Sequence, num_new_tokens: int, plan: StepPlan) -> bool:
        """Get running seq the blocks for its next tokens, preempting if need be (and only if
        that is enough: otherwise the victims' work would be thrown away for nothing)."""
        bm = self.block_manager
        if not bm.can_append(seq, num_new_tokens):
            self._free_suspended(seq, plan, lambda: bm.num_missing_blocks(seq, num_new_tokens),
                                 lambda: bm.can_append(seq, num_new_tokens), lambda s: s.priority >= seq.priority)
        if not bm.can_append(seq, num_new_tokens):
            plan.note_pressure(self._key(seq))
            victims = victims_in_order(self._running, seq, may_preempt_to_grow)
            if bm.num_missing_blocks(seq, num_new_tokens) <= bm.num_free_blocks + bm.num_blocks_freed_by(victims):
                for victim in victims:
                    if bm.can_append(seq, num_new_tokens):
                        break
                    self._preempt(victim, plan)
                if not bm.can_append(seq, num_new_tokens):
                    return False  # counted enough, freed less (shared blocks): wait a step
            elif any(other.sort_key() > seq.sort_key() for other in self._running):
                # Only seqs it may not preempt are behind it: wait for them; the last in order
                # preempts itself when it needs a block (the last resort).
                return False
            else:
                self._preempt(seq, plan)
                return False
        bm.append_slots(seq, num_new_tokens)
        return True

    def _schedule_waiting(self, plan: StepPlan, select: Callable[[Sequence], bool]) -> None:
        capped_lanes: set[str] = set()  # keep the lane's order: no overtaking a capped seq
        for seq in self._waiting_in_order():
            if plan.budget == 0:
                return
            if not select(seq):
                if seq.lane.is_deferrable:
                    continue  # its pass comes later
                return  # a latency seq still waits (no blocks or no time): nothing behind it goes
            # Equal is the seq that lacked blocks itself: not readmitted in its preemption step.
            if plan.pressure_key is not None and self._key(seq) >= plan.pressure_key:
                return
            assert seq not in plan.preempted, f"{seq.seq_id} would be readmitted in its preemption step"
            if seq.lane.name in capped_lanes or self._awaits_shared_prompt(seq):
                continue
            match = self.block_manager.match_prefix(seq)
            num_new_tokens = plan.max_new_tokens(match.num_tokens, seq.num_tokens - match.num_tokens)
            if num_new_tokens == 0:
                return  # no time left this step; strict order: nothing behind it either
            if seq.lane.fair_tenants and not self._fits(seq, match, num_new_tokens):
                self._make_room(seq, match, num_new_tokens, plan)
            victims = self._victims_to_admit(seq, match, num_new_tokens)
            if victims is None:
                # The cache is full for seq. Strict priority: nothing behind it may take the
                # blocks or the slot it waits for.
                return
            num_fresh_blocks = (
                self.block_manager.num_blocks_for(match.num_tokens + num_new_tokens) - len(match.block_ids)
            )
            if not lane_has_room(
                seq,
                self._running,
                self.config.max_num_seqs,
                self.block_manager.num_total_blocks,
                match.block_ids,
                num_fresh_blocks,
            ):
                capped_lanes.add(seq.lane.name)  # its lane's share is full, not the cache
                continue
            for victim in victims:
                if self._fits(seq, match, num_new_tokens):
                    break
                self._preempt(victim, plan)
            assert self._fits(seq, match, num_new_tokens), f"{seq.seq_id} still does not fit"
            self._admit(seq, match, num_new_tokens, plan)

    def _awaits_shared_prompt(self, seq: Sequence) -> bool:
        """True while seq's prompt_leader (the first sample of the same prompt, still unfinished)
        has yet to compute the full blocks seq would share and the cache does not hold them."""
        leader = seq.prompt_leader
        if leader is None or self._seqs.get(leader.seq_id) is not leader:
            return False  # no leader, or it finished or was aborted: seq goes on its own
        if not self.block_manager.has_prefix_cache or seq.sampling.prompt_logprobs is not None:
            return False  # nothing would be shared: no reason to wait
        shareable = self.block_manager.num_shareable_tokens(seq)
        return (leader.num_computed_tokens < shareable
                and self.block_manager.match_prefix(seq).num_tokens < shareable)

    def _victims_to_admit(
        self, seq: Sequence, match: PrefixMatch, num_new_tokens: int
    ) -> list[Sequence] | None:
        """Running seqs to preempt, first to go first, until seq fits; None if it cannot."""
        if self._fits(seq, match, num_new_tokens):
            return []
        victims = victims_in_order(self._running, seq, may_preempt_to_admit)
        if not victims:
            return None
        # Preempt only if it is enough; otherwise the victims' work is thrown away for nothing.
        # Blocks of the match stay cached when a victim lets go of them, so they do not count.
        num_needed = self.block_manager.num_blocks_to_allocate(seq, num_new_tokens, match)
        num_freeable = self.block_manager.num_blocks_freed_by(victims, keep=match.block_ids)
        if num_needed > self.block_manager.num_free_blocks + num_freeable:
            return None
        return victims

    def _fits(self, seq: Sequence, match: PrefixMatch, num_new_tokens: int) -> bool:
        return len(self._running) < self.config.max_num_seqs and self.block_manager.can_allocate(
            seq, num_new_tokens, match
        )

    def _admit(self, seq: Sequence, match: PrefixMatch, num_new_tokens: int, plan: StepPlan) -> None:
        self._waiting.remove(seq)
        self.block_manager.allocate(seq, match)
        self.block_manager.append_slots(seq, num_new_tokens)
        seq.status = SeqStatus.RUNNING
        if seq.first_scheduled_time is None:
            seq.first_scheduled_time = time.time()
        self._running.append(seq)
        plan.add(seq, num_new_tokens)

    def _preempt(self, seq: Sequence, plan: StepPlan) -> None:
        """Free seq's blocks (running or suspended) and requeue it; its tokens are recomputed
        when readmitted."""
        if seq.status == SeqStatus.SUSPENDED:
            self._suspended.remove(seq)
        else:
            self._running.remove(seq)
        self.block_manager.free(seq)
        seq.num_computed_tokens = 0
        seq.status = SeqStatus.WAITING
        seq.num_preemptions += 1
        self._waiting.add(seq)
        plan.drop(seq)
        plan.preempted.append(seq)
        plan.note_pressure(self._key(seq))

    # -- fair lanes (tenant_shares.py) ---------------------------------------------------

    def order_key(self, seq: Sequence) -> tuple[int, float, int]:
        """seq's place in the order of the current (or last) step: its sort key, or the place
        fair shares gave it in its lane."""
        return self._keys.get(seq.seq_id) or seq.sort_key()

    _key = order_key

    def _queued(self) -> list[Sequence]:
        """Seqs without a slot: waiting and suspended."""
        return [*self._waiting, *self._suspended]

    def _waiting_in_order(self) -> list[Sequence]:
        return sorted(self._waiting, key=self._key) if self._keys else list(self._waiting)

    def _fair_keys(self) -> dict[str, tuple[int, float, int]]:
        """Each fair lane shared by several tenants deals its prefill work's sort keys (its
        places in the order) out again, in its tenants' fair order."""
        by_lane: dict[str, list[Sequence]] = {}
        for seq in [*self._waiting, *(s for s in self._running if s.is_prefill)]:
            if seq.lane.fair_tenants:
                by_lane.setdefault(seq.lane.name, []).append(seq)
        keys: dict[str, tuple[int, float, int]] = {}
        for name, seqs in by_lane.items():
            if len({s.tenant for s in seqs}) < 2:
                continue  # one tenant: its own order is the lane's
            places = sorted(s.sort_key() for s in seqs)
            num_running = Counter(s.tenant for s in self._running if s.lane.name == name)
            order = self._shares.lane(name).order(seqs, num_running)
            keys.update((seq.seq_id, key) for seq, key in zip(order, places))
        return keys

    def _lane_slots(self, seq: Sequence) -> tuple[int, list[Sequence], dict[str, float]]:
        """seq's lane: its sequence slots, its running seqs, its active tenants' weights."""
        lane_slots = min(self.config.max_num_seqs, lane_seq_cap(seq.lane, self.config.max_num_seqs))
        lane_running = [s for s in self._running if s.lane.name == seq.lane.name]
        return lane_slots, lane_running, self._shares.lane(seq.lane.name).weights()

    def _make_room(self, seq: Sequence, match: PrefixMatch, num_new_tokens: int, plan: StepPlan) -> None:
        """The slot rule: a slot (and KV) for waiting seq if its tenant is under its share of
        the lane's slots, from the lane's tenants over theirs. What is still missing after it
        is the usual rules' to find (_victims_to_admit) or to wait for."""
        lane_slots, lane_running, weights = self._lane_slots(seq)
        if not is_under_share(seq, lane_running, lane_slots, weights):
            return
        if len(self._running) >= self.config.max_num_seqs or len(lane_running) >= lane_slots:
            victim = slot_victim(seq, lane_running, lane_slots, weights)
            if victim is None:
                return
            self._suspend(victim, plan)
        bm = self.block_manager
        self._free_suspended(seq, plan, lambda: bm.num_blocks_to_allocate(seq, num_new_tokens, match),
                             lambda: bm.can_allocate(seq, num_new_tokens, match),
                             lambda s: s.lane.name == seq.lane.name and s.tenant != seq.tenant,
                             keep=match.block_ids)

    def _free_suspended(self, seq: Sequence, plan: StepPlan, num_needed: Callable[[], int],
                        is_enough: Callable[[], bool], allowed: Callable[[Sequence], bool],
                        keep: Iterable[int] = ()) -> None:
        """Preempt suspended seqs (allowed ones, newest first) until is_enough(), and only if
        together they free enough: otherwise their KV would be thrown away for nothing."""
        holders = [s for s in reversed(self._suspended) if allowed(s) and s is not seq]
        bm = self.block_manager
        if not holders or is_enough():
            return
        if num_needed() > bm.num_free_blocks + bm.num_blocks_freed_by(holders, keep=keep):
            return
        for holder in holders:
            if is_enough():
                return
            self._preempt(holder, plan)

    def _suspend(self, seq: Sequence, plan: StepPlan) -> None:
        """Take running seq's slot, keeping its KV: it resumes where it stopped."""
        self._running.remove(seq)
        seq.status = SeqStatus.SUSPENDED
        self._suspended.append(seq)
        plan.drop(seq)
        plan.suspended.append(seq)

    def _resume_suspended(self) -> None:
        """Suspended seqs back into free slots, oldest first, unless another tenant under its
        share waits in the lane (the slot is its: it was set aside for that)."""
        for seq in list(self._suspended):
            if len(self._running) >= self.config.max_num_seqs:
                return
            lane_slots, lane_running, weights = self._lane_slots(seq)
            if self._running and (len(lane_running) >= lane_slots or any(
                    w.lane.name == seq.lane.name and w.tenant != seq.tenant
                    and is_under_share(w, lane_running, lane_slots, weights) for w in self._waiting)):
                continue  # (with nothing running, it goes: the KV it holds may be what they wait for)
            self._suspended.remove(seq)
            seq.status = SeqStatus.RUNNING
            self._running.append(seq)

    # -- checks --------------------------------------------------------------------------

    def check_integrity(self) -> None:
        running_ids = [s.seq_id for s in self._running]
        waiting_ids = [s.seq_id for s in self._waiting]
        suspended_ids = [s.seq_id for s in self._suspended]
        assert len(set(running_ids)) == len(running_ids), "a seq is running twice"
        assert len(set(suspended_ids)) == len(suspended_ids), "a seq is suspended twice"
        assert not set(running_ids) & set(waiting_ids), "a seq is both running and waiting"
        assert not set(suspended_ids) & (set(running_ids) | set(waiting_ids)), "a suspended seq is queued too"
        assert set(running_ids) | set(waiting_ids) | set(suspended_ids) == set(self._seqs), "queues and index disagree"
        assert len(self._running) <= self.config.max_num_seqs, "more running seqs than max_num_seqs"
        for seq in self._running:
            assert seq.status == SeqStatus.RUNNING, f"{seq.seq_id} in running as {seq.status.name}"
            assert seq.num_uncomputed_tokens > 0, f"running {seq.seq_id} has nothing to compute"
        for seq in self._suspended:
            assert seq.status == SeqStatus.SUSPENDED, f"{seq.seq_id} in suspended as {seq.status.name}"
            assert seq.lane.fair_tenants, f"{seq.seq_id} suspended in lane {seq.lane.name} without fair shares"
        for seq in self._waiting:
            assert seq.status == SeqStatus.WAITING, f"{seq.seq_id} in waiting as {seq.status.name}"
            assert not seq.block_table and seq.num_computed_tokens == 0, f"waiting {seq.seq_id} holds KV"
        keys = [s.sort_key() for s in self._waiting]
        assert keys == sorted(keys), "waiting queue out of order"
        self.block_manager.check_integrity([*self._running, *self._suspended])


def _is_latency(seq: Sequence) -> bool:
    return not seq.lane.is_deferrable


def _is_deferrable(seq: Sequence) -> bool:
    return seq.lane.is_deferrable


def _turn_key(seq: Sequence) -> tuple[int, int, tuple[int, float, int]]:
    """Decodes that may sit out: by priority, then whoever waited longest since its last
    tokens, so equal priorities take turns instead of the same seqs always losing."""
    return (seq.priority, seq.last_scheduled_step, seq.sort_key())
