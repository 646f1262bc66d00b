"""Iteration-level continuous batching: chunked prefill, lane priorities, preemption by recompute.

The engine loop is schedule() -> model runner -> postprocess(). Not thread-safe: the
engine thread owns the scheduler; other threads hand requests and aborts over a queue.
"""

from __future__ import annotations

import time

from workers.engine.block_manager import BlockManager
from workers.engine.config import SchedulerConfig
from workers.engine.lane_caps import LaneOccupancy, lane_block_ids, lane_has_room
from workers.engine.preemption import may_preempt_to_admit, may_preempt_to_grow, victims_in_order
from workers.engine.prefix_cache import PrefixMatch
from workers.engine.request_error import InvalidRequest
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import Sequence, SeqStatus
from workers.engine.step_plan import StepPlan
from workers.engine.stopping import finish_status
from workers.engine.waiting_queue import WaitingQueue


class Scheduler:
    def __init__(self, config: SchedulerConfig, block_manager: BlockManager) -> None:
        self.config = config
        self.block_manager = block_manager
        self._waiting = WaitingQueue()
        self._running: list[Sequence] = []
        self._seqs: dict[str, Sequence] = {}  # index by id of every unfinished seq
        self._abort_ids: dict[str, None] = {}  # insertion-ordered set

    # -- queries -----------------------------------------------------------------------

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_queued_prefill_tokens(self) -> int:
        """Tokens still to prefill: all of every waiting seq, the rest of running prefills."""
        waiting = sum(seq.num_uncomputed_tokens for seq in self._waiting)
        return waiting + sum(seq.num_uncomputed_tokens for seq in self._running if seq.is_prefill)

    @property
    def has_unfinished(self) -> bool:
        return bool(self._seqs)

    @property
    def running(self) -> tuple[Sequence, ...]:
        return tuple(self._running)

    @property
    def waiting(self) -> tuple[Sequence, ...]:
        """In scheduling order."""
        return tuple(self._waiting)

    def get(self, seq_id: str) -> Sequence | None:
        return self._seqs.get(seq_id)

    def max_blocks_needed(self, seq: Sequence) -> int:
        """KV blocks seq holds at its longest. The last token is never computed."""
        final_len = min(self.config.max_model_len, seq.num_prompt_tokens + seq.sampling.max_tokens)
        return self.block_manager.num_blocks_for(final_len - 1)

    def can_ever_fit(self, seq: Sequence) -> bool:
        """False for a request that could never finish in this cache: reject it at the edge."""
        return self.max_blocks_needed(seq) <= self.block_manager.num_total_blocks

    def check_admissible(self, seq: Sequence) -> None:
        """Raise InvalidRequest for a request this worker could never serve.

        Reads only sizes fixed at start-up, so the servicer calls it at the edge too, off the
        engine thread; `add` calls it again, because the engine must never trust its caller."""
        if seq.num_tokens >= self.config.max_model_len:  # room for at least one generated token
            raise InvalidRequest(f"prompt has {seq.num_tokens} tokens; this worker's max_model_len is "
                                 f"{self.config.max_model_len} (prompt must be shorter to leave room for output)")
        if not self.can_ever_fit(seq):
            raise InvalidRequest(f"request needs {self.max_blocks_needed(seq)} KV blocks at full length; "
                                 f"this worker has {self.block_manager.num_total_blocks}")

    def lane_occupancy(self) -> dict[str, LaneOccupancy]:
        names = {seq.lane.name for seq in self._running} | {seq.lane.name for seq in self._waiting}
        return {
            name: LaneOccupancy(
                num_running=sum(1 for s in self._running if s.lane.name == name),
                num_waiting=sum(1 for s in self._waiting if s.lane.name == name),
                num_blocks=len(lane_block_ids(name, self._running)),
            )
            for name in sorted(names)
        }

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
        else:
            self._waiting.remove(seq)
        self.block_manager.free(seq)
        seq.status = status
        del self._seqs[seq.seq_id]

    # -- the step ----------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        # THE RULE. Each sequence has num_computed_tokens (K/V in the cache) and num_tokens
        # (prompt + generated so far). Each step assigns tokens so that the first catches up
        # with the second, within the per-step token budget (max_num_batched_tokens) and the
        # cap on sequences (max_num_seqs). Prefill, chunked prefill, prefix-cache hits,
        # recompute after preemption and decode are all this one rule.
        #
        # Order: running decodes first (one token each), then prefill work by urgency:
        # ongoing prefill chunks more urgent than the head of the waiting queue, then waiting
        # seqs, then the remaining ongoing chunks; within each group by Sequence.sort_key()
        # (priority, deadline, arrival). So a half-prefilled bulk prompt never takes the
        # budget ahead of an interactive prompt that just arrived. A prompt longer than the
        # remaining budget gets a chunk of what is left, so decodes never stall behind it.
        output = SchedulerOutput()
        self._apply_aborts(output)
        plan = StepPlan(budget=self.config.max_num_batched_tokens)
        self._schedule_running(plan, decodes=True)
        head = next(iter(self._waiting), None)
        self._schedule_running(plan, decodes=False, more_urgent_than=head.sort_key() if head else None)
        self._schedule_waiting(plan)
        self._schedule_running(plan, decodes=False)
        scheduled = list(plan.scheduled.values())
        # Decodes first (stable), as the model runner expects.
        output.scheduled = sorted(scheduled, key=lambda s: s.seq.num_uncomputed_tokens != 1)
        output.preempted = plan.preempted
        assert output.num_batched_tokens <= self.config.max_num_batched_tokens, "token budget exceeded"
        assert len(output.scheduled) <= self.config.max_num_seqs, "sequence cap exceeded"
        return output

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
            status = finish_status(seq, self.config.max_model_len)
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

    def _schedule_running(self, plan: StepPlan, decodes: bool,
                          more_urgent_than: tuple[int, float, int] | None = None) -> None:
        stalled: list[Sequence] = []
        for seq in sorted(self._running, key=Sequence.sort_key):
            if plan.budget == 0:
                return
            if more_urgent_than is not None and seq.sort_key() >= more_urgent_than:
                break  # sorted: the rest are less urgent too and wait for the waiting queue
            if seq.status != SeqStatus.RUNNING or seq.seq_id in plan.scheduled:
                continue  # preempted earlier in this step, or done in an earlier pass
            assert seq.num_uncomputed_tokens > 0, f"running {seq.seq_id} has nothing to compute"
            if (seq.num_uncomputed_tokens == 1) != decodes:
                continue
            num_new_tokens = min(seq.num_uncomputed_tokens, plan.budget)
            if self._reserve_blocks_to_grow(seq, num_new_tokens, plan):
                plan.add(seq, num_new_tokens)
            elif seq.status == SeqStatus.RUNNING:
                stalled.append(seq)
        # A less urgent seq that preempted itself later in the pass may have freed enough.
        for seq in stalled:
            num_new_tokens = min(seq.num_uncomputed_tokens, plan.budget)
            if num_new_tokens > 0 and self.block_manager.can_append(seq, num_new_tokens):
                self.block_manager.append_slots(seq, num_new_tokens)
                plan.add(seq, num_new_tokens)

    def _reserve_blocks_to_grow(self, seq: Sequence, num_new_tokens: int, plan: StepPlan) -> bool:
        """Get running seq the blocks for its next tokens, preempting if need be."""
        while not self.block_manager.can_append(seq, num_new_tokens):
            plan.note_pressure(seq)
            victims = victims_in_order(self._running, seq, may_preempt_to_grow)
            if victims:
                self._preempt(victims[0], plan)
                continue
            # Only equal-priority non-preemptible seqs remain behind seq. Wait for them: the
            # last in order preempts itself when it needs a block (the last resort).
            if any(other.sort_key() > seq.sort_key() for other in self._running):
                return False
            self._preempt(seq, plan)
            return False
        self.block_manager.append_slots(seq, num_new_tokens)
        return True

    def _schedule_waiting(self, plan: StepPlan) -> None:
        capped_lanes: set[str] = set()  # keep FCFS within a lane: no overtaking a capped seq
        for seq in list(self._waiting):
            if plan.budget == 0:
                return
            # Equal is the seq that lacked blocks itself: not readmitted in its preemption step.
            if plan.pressure_key is not None and seq.sort_key() >= plan.pressure_key:
                return
            assert seq not in plan.preempted, f"{seq.seq_id} would be readmitted in its preemption step"
            if seq.lane.name in capped_lanes:
                continue
            match = self.block_manager.match_prefix(seq)
            num_new_tokens = min(seq.num_tokens - match.num_tokens, plan.budget)
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
        """Free seq's blocks and requeue it; its tokens are recomputed when readmitted."""
        self._running.remove(seq)
        self.block_manager.free(seq)
        seq.num_computed_tokens = 0
        seq.status = SeqStatus.WAITING
        seq.num_preemptions += 1
        self._waiting.add(seq)
        plan.drop(seq)
        plan.preempted.append(seq)
        plan.note_pressure(seq)

    # -- checks --------------------------------------------------------------------------

    def check_integrity(self) -> None:
        running_ids = [s.seq_id for s in self._running]
        waiting_ids = [s.seq_id for s in self._waiting]
        assert len(set(running_ids)) == len(running_ids), "a seq is running twice"
        assert not set(running_ids) & set(waiting_ids), "a seq is both running and waiting"
        assert set(running_ids) | set(waiting_ids) == set(self._seqs), "queues and index disagree"
        assert len(self._running) <= self.config.max_num_seqs, "more running seqs than max_num_seqs"
        for seq in self._running:
            assert seq.status == SeqStatus.RUNNING, f"{seq.seq_id} in running as {seq.status.name}"
            assert seq.num_uncomputed_tokens > 0, f"running {seq.seq_id} has nothing to compute"
        for seq in self._waiting:
            assert seq.status == SeqStatus.WAITING, f"{seq.seq_id} in waiting as {seq.status.name}"
            assert not seq.block_table and seq.num_computed_tokens == 0, f"waiting {seq.seq_id} holds KV"
        keys = [s.sort_key() for s in self._waiting]
        assert keys == sorted(keys), "waiting queue out of order"
        self.block_manager.check_integrity(self._running)
