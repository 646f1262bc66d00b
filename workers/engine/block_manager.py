"""Paged KV block accounting: reference counts, on-demand allocation, prefix reuse.

Invariants (checked by `check_integrity`):
- a block's ref_count is the number of live sequences whose block_table holds it;
- a block is in the free queue exactly when its ref_count is 0;
- blocks shared between sequences are full and registered, hence immutable: new tokens
  are only ever written to a sequence's own unregistered tail blocks.

The free queue is in eviction order. Blocks still findable in the prefix cache join at the
back when freed (least recently used are evicted first); blocks worth nothing to the cache
join at the front. A free cached block stays reusable until it is handed out fresh.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable

from workers.engine.kv_block import KVBlock
from workers.engine.prefix_cache import EMPTY_MATCH, PrefixCache, PrefixMatch
from workers.engine.sequence import Sequence


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True) -> None:
        assert num_blocks > 0, "need at least one KV block"
        assert block_size > 0, "block_size must be positive"
        self.block_size = block_size
        self.blocks = [KVBlock(block_id=i) for i in range(num_blocks)]
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._prefix_cache = PrefixCache(block_size) if enable_prefix_caching else None
        # Metrics: hit rate = num_prefix_hit_tokens / num_prefix_queried_tokens.
        self.num_prefix_hit_tokens = 0
        self.num_prefix_queried_tokens = 0

    @property
    def num_total_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        """Blocks with no owner, including evictable cached ones."""
        return len(self._free)

    @property
    def usage(self) -> float:
        return 1.0 - self.num_free_blocks / self.num_total_blocks

    @property
    def num_cached_blocks(self) -> int:
        return len(self._prefix_cache) if self._prefix_cache is not None else 0

    def num_blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # -- admission ---------------------------------------------------------------------

    def match_prefix(self, seq: Sequence) -> PrefixMatch:
        """Cached blocks for seq's leading tokens; read-only, counts nothing.

        Only blocks lying entirely within the first num_tokens - 1 tokens qualify: at least
        the last token must be computed so the step produces logits.
        """
        if self._prefix_cache is None:
            return EMPTY_MATCH
        max_blocks = (seq.num_tokens - 1) // self.block_size
        return self._prefix_cache.match(seq.token_ids, max_blocks)

    def num_blocks_to_allocate(self, seq: Sequence, num_new_tokens: int, match: PrefixMatch) -> int:
        """Free blocks consumed by admitting seq with `num_new_tokens` computed after the hit."""
        assert num_new_tokens > 0, "a first chunk computes at least one token"
        assert match.num_tokens + num_new_tokens <= seq.num_tokens, (
            f"first chunk of {seq.seq_id} runs past its {seq.num_tokens} tokens"
        )
        num_revived = sum(1 for i in match.block_ids if self.blocks[i].ref_count == 0)
        num_fresh = self.num_blocks_for(match.num_tokens + num_new_tokens) - len(match.block_ids)
        return num_revived + num_fresh

    def can_allocate(self, seq: Sequence, num_new_tokens: int, match: PrefixMatch | None = None) -> bool:
        """Can seq be admitted with a first chunk of num_new_tokens (counted after the hit)?"""
        if match is None:
            match = self.match_prefix(seq)
        return self.num_blocks_to_allocate(seq, num_new_tokens, match) <= self.num_free_blocks

    def allocate(self, seq: Sequence, match: PrefixMatch | None = None) -> None:
        """Admit a waiting seq: take its cached prefix blocks. append_slots() adds the rest."""
        assert not seq.block_table, f"{seq.seq_id} already holds blocks"
        assert seq.num_computed_tokens == 0, f"{seq.seq_id} must be admitted from zero"
        if match is None:
            match = self.match_prefix(seq)
        for block_id, epoch in zip(match.block_ids, match.epochs, strict=True):
            block = self.blocks[block_id]
            assert block.epoch == epoch, f"prefix match went stale: block {block_id} was reused"
            if block.ref_count == 0:
                del self._free[block_id]
            block.ref_count += 1
        seq.block_table = list(match.block_ids)
        seq.num_computed_tokens = match.num_tokens
        if seq.num_preemptions == 0:
            # Usage counts the client's prompt as first admitted (as vLLM does). A recompute
            # after preemption is the worker's own cost, and its hits may cover generated
            # tokens too, which would report more cached tokens than the prompt has.
            seq.num_cached_tokens = min(match.num_tokens, seq.num_prompt_tokens)
        self.num_prefix_hit_tokens += match.num_tokens
        self.num_prefix_queried_tokens += seq.num_tokens

    # -- growth ------------------------------------------------------------------------

    def num_missing_blocks(self, seq: Sequence, num_new_tokens: int) -> int:
        """Blocks a running seq still needs to compute its next num_new_tokens."""
        needed = self.num_blocks_for(seq.num_computed_tokens + num_new_tokens)
        return max(0, needed - len(seq.block_table))

    def can_append(self, seq: Sequence, num_new_tokens: int) -> bool:
        return self.num_missing_blocks(seq, num_new_tokens) <= self.num_free_blocks

    def append_slots(self, seq: Sequence, num_new_tokens: int) -> None:
        """Make seq.block_table cover positions [0, num_computed_tokens + num_new_tokens)."""
        num_missing = self.num_missing_blocks(seq, num_new_tokens)
        assert num_missing <= self.num_free_blocks, (
            f"{seq.seq_id} needs {num_missing} blocks, {self.num_free_blocks} free: check can_append first"
        )
        for _ in range(num_missing):
            block_id, _ = self._free.popitem(last=False)
            block = self.blocks[block_id]
            if self._prefix_cache is not None:
                self._prefix_cache.evict(block)
            block.ref_count = 1
            seq.block_table.append(block_id)

    def mark_computed(self, seq: Sequence) -> None:
        """Register blocks that became full; call after advancing seq.num_computed_tokens."""
        if self._prefix_cache is None:
            return
        num_full = seq.num_computed_tokens // self.block_size
        assert num_full <= len(seq.block_table), f"{seq.seq_id} computed tokens beyond its blocks"
        # Registered blocks form a prefix of the table; walk back to its end.
        first = num_full
        while first > 0 and not self.blocks[seq.block_table[first - 1]].is_registered:
            first -= 1
        for i in range(first, num_full):
            parent = self.blocks[seq.block_table[i - 1]] if i > 0 else None
            tokens = tuple(seq.token_ids[i * self.block_size : (i + 1) * self.block_size])
            self._prefix_cache.register(self.blocks[seq.block_table[i]], parent, tokens)

    # -- release -----------------------------------------------------------------------

    def free(self, seq: Sequence) -> None:
        # Tail first: with equal recency, a prompt's last blocks are evicted before its first.
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            assert block.ref_count > 0, f"block {block_id} freed twice"
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block_id] = None
                if self._prefix_cache is None or not self._prefix_cache.is_cached(block):
                    self._free.move_to_end(block_id, last=False)
        seq.block_table = []

    def num_blocks_freed_by(self, seqs: Iterable[Sequence], keep: Iterable[int] = ()) -> int:
        """Blocks that freeing all of `seqs` would return, not counting the `keep` ids."""
        counts = Counter(block_id for seq in seqs for block_id in seq.block_table)
        kept = set(keep)
        return sum(
            1
            for block_id, count in counts.items()
            if block_id not in kept and self.blocks[block_id].ref_count == count
        )

    # -- checks ------------------------------------------------------------------------

    def check_integrity(self, live_seqs: Iterable[Sequence]) -> None:
        refs: Counter[int] = Counter()
        for seq in live_seqs:
            table = seq.block_table
            assert len(table) == len(set(table)), f"{seq.seq_id} holds a block twice: {table}"
            assert len(table) >= self.num_blocks_for(seq.num_computed_tokens), (
                f"{seq.seq_id} computed {seq.num_computed_tokens} tokens in {len(table)} blocks"
            )
            refs.update(table)
            for i, block_id in enumerate(table):
                tokens = self.blocks[block_id].token_ids
                if tokens is not None:
                    expected = tuple(seq.token_ids[i * self.block_size : (i + 1) * self.block_size])
                    assert tokens == expected, f"{seq.seq_id} block {i} holds another prefix"
        for block in self.blocks:
            assert block.ref_count == refs[block.block_id], (
                f"block {block.block_id}: ref_count {block.ref_count}, referenced {refs[block.block_id]}"
            )
            is_free = block.block_id in self._free
            assert is_free == (block.ref_count == 0), (
                f"block {block.block_id}: free={is_free} with ref_count {block.ref_count}"
            )
            if block.ref_count > 1:
                assert block.is_registered, f"shared block {block.block_id} is not full and immutable"
        assert len(self._free) + sum(1 for b in self.blocks if b.ref_count > 0) == len(self.blocks), (
            "every block is either free or referenced"
        )
        if self._prefix_cache is not None:
            self._prefix_cache.check_integrity(self.blocks)
        else:
            assert all(not b.is_registered for b in self.blocks), "registered block without a cache"
