"""Per-lane admission caps: how bulk fills idle capacity without taking all of it.

A lane may hold at most ceil(max_seq_share * max_num_seqs) running sequences and
floor(max_kv_share * num_blocks) KV blocks. The caps gate admission only: a running
sequence may grow past its lane's block cap, which then just stops further admissions
from that lane (preemption by higher lanes reclaims the blocks when they are needed).
A lane with nothing running may always admit one sequence, so a cap never locks a lane out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from workers.engine.sequence import LanePolicy, Sequence


@dataclass(frozen=True)
class LaneOccupancy:
    num_running: int = 0
    num_waiting: int = 0
    num_blocks: int = 0  # distinct KV blocks held by the lane's running seqs


@dataclass(frozen=True)
class LaneLoad:
    """One lane's backlog on this worker, for the gateway's admission (LoadReport.lanes)."""

    name: str
    priority: int
    preemptible: bool
    num_running: int
    num_waiting: int
    num_queued_prefill_tokens: int
    predicted_wait_s: float  # before a new request of this lane starts its prefill here


def lane_seq_cap(lane: LanePolicy, max_num_seqs: int) -> int:
    # round() first so 0.3 * 10 is 3, not ceil(3.0000000000000004) == 4.
    return math.ceil(round(lane.max_seq_share * max_num_seqs, 9))


def lane_block_cap(lane: LanePolicy, num_total_blocks: int) -> int:
    return math.floor(round(lane.max_kv_share * num_total_blocks, 9))


def lane_block_ids(lane_name: str, running: Iterable[Sequence]) -> set[int]:
    # Distinct ids: a prefix shared by many seqs of a lane occupies its blocks once, and a
    # share of 1.0 then never binds before the cache itself is full.
    return {block_id for s in running if s.lane.name == lane_name for block_id in s.block_table}


def lane_has_room(
    seq: Sequence,
    running: Iterable[Sequence],
    max_num_seqs: int,
    num_total_blocks: int,
    hit_block_ids: Iterable[int],
    num_fresh_blocks: int,
) -> bool:
    """May seq join the running set (taking its prefix hits and fresh blocks) under its lane's caps?"""
    lane_running = [s for s in running if s.lane.name == seq.lane.name]
    if not lane_running:
        return True
    if len(lane_running) >= lane_seq_cap(seq.lane, max_num_seqs):
        return False
    num_lane_blocks = len(lane_block_ids(seq.lane.name, lane_running) | set(hit_block_ids))
    return num_lane_blocks + num_fresh_blocks <= lane_block_cap(seq.lane, num_total_blocks)
