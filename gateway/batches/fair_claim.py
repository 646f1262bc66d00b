"""How a gateway's free batch slots are shared: weighted round robin over tenants, then batches.

The rule, stated once: each free slot goes to the tenant whose running lines on this
gateway, over its weight, are fewest (among tenants with a batch that still has lines
to run), and within that tenant to its batch with the fewest running lines. A huge
batch thus holds no more than its tenant's share while another batch waits, and a
batch submitted later gets the next slots that free up. Ties are broken by a shuffled
order, drawn again every pass, so no batch id (the lowest, say) is always first: every
gateway claims in its own order and no batch is favoured fleet-wide. Since each gateway
shares its own slots this way, the fleet's slots are shared the same way.

Pure Python, no Redis: the runner gives the batches and their counts and claims what
this returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Claimable:
    batch_id: str
    tenant: str
    weight: float  # the tenant's weight in the policy
    num_unanswered: int  # lines without an answer yet, anywhere (caps what it can use)
    num_running: int  # its lines running on this gateway now


def share_slots(batches: list[Claimable], free_slots: int, rng: random.Random | None = None) -> dict[str, int]:
    """Batch id -> how many more lines it may claim now; the counts add up to at most free_slots."""
    order = list(batches)
    (rng or random).shuffle(order)
    running = {b.batch_id: b.num_running for b in order}
    by_tenant: dict[str, list[Claimable]] = {}
    for b in order:
        by_tenant.setdefault(b.tenant, []).append(b)
    weight = {t: max(bs[0].weight, 1e-9) for t, bs in by_tenant.items()}
    tenant_running = {t: sum(running[b.batch_id] for b in bs) for t, bs in by_tenant.items()}
    grants = {b.batch_id: 0 for b in order}

    def wants_more(b: Claimable) -> bool:
        return running[b.batch_id] < b.num_unanswered

    for _ in range(max(0, free_slots)):
        tenants = [t for t, bs in by_tenant.items() if any(wants_more(b) for b in bs)]
        if not tenants:
            break
        tenant = min(tenants, key=lambda t: tenant_running[t] / weight[t])  # min() keeps the shuffled order on ties
        batch = min((b for b in by_tenant[tenant] if wants_more(b)), key=lambda b: running[b.batch_id])
        running[batch.batch_id] += 1
        tenant_running[tenant] += 1
        grants[batch.batch_id] += 1
    return {batch_id: n for batch_id, n in grants.items() if n}
