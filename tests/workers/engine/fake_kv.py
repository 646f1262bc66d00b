"""A model stand-in that checks the paged KV layout instead of computing attention.

Every slot written holds a digest of the whole prefix that produced it (K/V at position p
depend on tokens [0, p]). Before a chunk is "computed", every earlier position of the
sequence must read back its own prefix digest through the block table: a wrong prefix
reuse, a stale block or a write into a shared block shows up as a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable

from workers.engine.block_manager import BlockManager
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import Sequence


def prefix_digests(token_ids: list[int]) -> list[int]:
    digests, digest = [], 0
    for token_id in token_ids:
        digest = hash((digest, token_id))
        digests.append(digest)
    return digests


class FakeKVModel:
    def __init__(self, block_manager: BlockManager, sample: Callable[[Sequence], int]) -> None:
        self.block_manager = block_manager
        self.sample = sample
        self.slots: dict[int, int] = {}

    def run(self, output: SchedulerOutput) -> dict[str, int]:
        block_size = self.block_manager.block_size
        for item in output.scheduled:
            seq = item.seq
            digests = prefix_digests(seq.token_ids[: item.end])
            assert len(seq.block_table) * block_size >= item.end, f"{seq.seq_id}: too few blocks"

            def slot(pos: int, seq: Sequence = seq) -> int:
                return seq.block_table[pos // block_size] * block_size + pos % block_size

            for pos in range(item.start):
                assert self.slots.get(slot(pos)) == digests[pos], (
                    f"{seq.seq_id} reads wrong K/V at position {pos}"
                )
            for pos in range(item.start, item.end):
                block = self.block_manager.blocks[seq.block_table[pos // block_size]]
                assert block.ref_count == 1 and not block.is_registered, (
                    f"{seq.seq_id} writes position {pos} into shared or cached block {block.block_id}"
                )
                self.slots[slot(pos)] = digests[pos]
        return {s.seq.seq_id: self.sample(s.seq) for s in output.scheduled if s.needs_sample}
