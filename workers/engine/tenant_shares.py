"""Fair shares between the tenants of one lane, on this worker (lanes with `fair_tenants`).

The gateway orders what it still holds (gateway/lanes_runtime/fair_share.py); the queue of a
saturated lane forms here, in the worker, so the worker orders it too. Two rules:

- Order: each tenant has a virtual token counter per fair lane, the service it got here in
  weighted tokens (tokens computed / weight; a prompt token weighs PROMPT_TOKEN_COST of a
  generated one, as at the gateway). The lane's prefill work (waiting seqs, running prompt
  chunks) goes tenant with the smallest counter first, its own seqs oldest first; each pick
  is charged provisionally what the seq will still cost, so two backlogs interleave by
  tokens, not by requests. A tenant that becomes active (its first unfinished seq in the
  lane here) is lifted to the smallest counter of the active tenants (with none active, to
  the largest counter served), so idle time is never banked.
- Slots: the lane's sequence slots (max_num_seqs, or fewer under its max_seq_share) are
  split between its active tenants by weight. A waiting seq whose tenant would stay within
  its share with one more running seq may take the slot of a tenant running more than its
  share (`slot_victim`; the scheduler sets that seq aside with its KV). The admitted tenant
  stays within its share and the other does not fall below its own, so two tenants never
  take a slot back and forth.

Pure Python, no clock. Counters only grow while a tenant is active; their order is all
that matters.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping

from laneway_proto.fair_cost import PROMPT_TOKEN_COST
from workers.engine.sequence import Sequence

DECODE_TOKEN_COST = 1.0


def step_cost(num_new_tokens: int, is_decode: bool) -> float:
    """Service one scheduled chunk gives its tenant, in generated tokens."""
    return DECODE_TOKEN_COST if is_decode else PROMPT_TOKEN_COST * num_new_tokens


def remaining_cost(seq: Sequence) -> float:
    """What seq will still cost its tenant at most: the prompt left to compute and every
    output token it may still generate."""
    num_prompt_left = max(0, seq.num_prompt_tokens - seq.num_computed_tokens)
    num_output_left = max(0, seq.sampling.max_tokens - seq.num_output_tokens)
    return PROMPT_TOKEN_COST * num_prompt_left + DECODE_TOKEN_COST * num_output_left


class LaneCounters:
    """One fair lane's counters. Active tenants: with an unfinished seq in the lane here."""

    def __init__(self) -> None:
        self._counters: dict[str, float] = {}
        self._num_active: Counter[str] = Counter()
        self._weights: dict[str, float] = {}  # active tenants' weights, from their newest seq
        self._last_served = 0.0

    def counter(self, tenant: str) -> float:
        return self._counters.get(tenant, 0.0)

    def num_active(self, tenant: str) -> int:
        return self._num_active[tenant]

    def weights(self) -> dict[str, float]:
        """Weight of every active tenant."""
        return dict(self._weights)

    def arrive(self, tenant: str, weight: float) -> None:
        if self._num_active[tenant] == 0:
            floor = min((self._counters.get(t, 0.0) for t in self._num_active), default=self._last_served)
            self._counters[tenant] = max(self._counters.get(tenant, 0.0), floor)
            # An idle tenant at or under the floor would be lifted to it anyway: forget it, so
            # the counters of tenants gone for good do not pile up. (The floor never falls.)
            for idle in [t for t, c in self._counters.items() if c <= floor and t not in self._num_active]:
                if idle != tenant:
                    del self._counters[idle]
        self._num_active[tenant] += 1
        self._weights[tenant] = weight

    def leave(self, tenant: str) -> None:
        self._num_active[tenant] -= 1
        if self._num_active[tenant] <= 0:
            del self._num_active[tenant]
            self._weights.pop(tenant, None)

    def charge(self, tenant: str, cost: float, weight: float) -> None:
        self._counters[tenant] = self._counters.get(tenant, 0.0) + cost / weight
        self._last_served = max(self._last_served, self._counters[tenant])

    def order(self, seqs: Iterable[Sequence], num_running: Mapping[str, int]) -> list[Sequence]:
        """seqs (of this lane) in fair order: smallest counter first, each tenant's own seqs by
        Sequence.sort_key. A tie is what a returning tenant meets (lifted level with the least
        served): it goes to the tenant running fewer seqs in the lane (`num_running`), then with
        fewer seqs here, then by name, so who waits never depends on names alone."""
        queues: dict[str, list[Sequence]] = {}
        for seq in sorted(seqs, key=Sequence.sort_key):
            queues.setdefault(seq.tenant, []).append(seq)
        heap = [(self.counter(t), num_running.get(t, 0), self._num_active[t], t) for t in queues]
        heapq.heapify(heap)
        ordered: list[Sequence] = []
        taken = Counter[str]()
        while heap:
            level, running, num_active, tenant = heapq.heappop(heap)
            seq = queues[tenant][taken[tenant]]
            taken[tenant] += 1
            ordered.append(seq)
            if taken[tenant] < len(queues[tenant]):
                heapq.heappush(heap, (level + remaining_cost(seq) / seq.tenant_weight, running, num_active, tenant))
        return ordered


def slot_share(lane_slots: int, tenant: str, weights: dict[str, float]) -> float:
    """The tenant's share of the lane's slots: by weight among the active tenants."""
    total = sum(weights.values())
    return lane_slots * weights.get(tenant, 0.0) / total if total > 0 else float(lane_slots)


def slot_victim(seq: Sequence, lane_running: Iterable[Sequence], lane_slots: int,
                weights: dict[str, float]) -> Sequence | None:
    """The running seq of seq's lane to set aside so seq gets a slot, or None: only when seq's
    tenant, with one more running seq, stays within its share, and another tenant runs more
    than its own share. Then the newest running seq of the tenant furthest over its share."""
    running = list(lane_running)
    if not is_under_share(seq, running, lane_slots, weights):
        return None
    counts = Counter(s.tenant for s in running)
    excess = {t: n - slot_share(lane_slots, t, weights) for t, n in counts.items() if t != seq.tenant}
    over = [t for t, e in excess.items() if e > 1e-9]
    if not over:
        return None
    tenant = max(over, key=lambda t: (excess[t], t))
    return max((s for s in running if s.tenant == tenant), key=lambda s: s.arrival_order)


def is_under_share(seq: Sequence, lane_running: Iterable[Sequence], lane_slots: int,
                   weights: dict[str, float]) -> bool:
    """Would seq's tenant stay within its share of the lane's slots with one more running seq?"""
    num_running = sum(1 for s in lane_running if s.tenant == seq.tenant)
    return num_running + 1 <= slot_share(lane_slots, seq.tenant, weights) + 1e-9


class TenantShares:
    """The counters of every fair lane on this worker, fed by the scheduler."""

    def __init__(self) -> None:
        self._lanes: dict[str, LaneCounters] = {}

    def lane(self, name: str) -> LaneCounters:
        return self._lanes.setdefault(name, LaneCounters())

    def arrive(self, seq: Sequence) -> None:
        if seq.lane.fair_tenants:
            self.lane(seq.lane.name).arrive(seq.tenant, seq.tenant_weight)

    def leave(self, seq: Sequence) -> None:
        if seq.lane.fair_tenants:
            self.lane(seq.lane.name).leave(seq.tenant)

    def charge(self, seq: Sequence, num_new_tokens: int, is_decode: bool) -> None:
        if seq.lane.fair_tenants:
            self.lane(seq.lane.name).charge(seq.tenant, step_cost(num_new_tokens, is_decode), seq.tenant_weight)
