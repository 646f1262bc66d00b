"""Prefix cache: find full KV blocks already computed for the same leading tokens.

A full block is keyed by a chained hash, hash(parent block's hash, its own token ids), so one
dict lookup per block walks a prompt from the start. The hash only finds candidates; a hit
is accepted only if the candidate holds exactly this block's token ids AND was registered
as the child of the very block matched one level up (by epoch). By induction a hit
therefore covers exactly the same leading tokens, and a hash collision is a miss, never a
wrong reuse.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass

from workers.engine.kv_block import ROOT_EPOCH, KVBlock


def hash_block_tokens(parent_hash: int | None, token_ids: tuple[int, ...]) -> int:
    """A 64-bit hash of (parent hash, token ids) that every process and machine agrees on.

    Python's hash() is not one: hash(None) is the object's address (before 3.12), and str
    and bytes are salted per process. Anything comparing hashes across processes (cache-
    aware routing) needs the same value everywhere, so this is blake2b over fixed-width
    little-endian integers. Collisions are harmless here: every hit is verified.
    """
    tokens = struct.pack(f"<{len(token_ids)}q", *token_ids)
    # A first block hashes its tokens alone; others are 8 bytes longer, so never confused.
    data = tokens if parent_hash is None else struct.pack("<Q", parent_hash) + tokens
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@dataclass(frozen=True)
class PrefixMatch:
    """Cached blocks covering the first `num_tokens` tokens of a sequence."""

    block_ids: tuple[int, ...]
    epochs: tuple[int, ...]  # lets allocate() check the match is still what the cache holds
    num_tokens: int


EMPTY_MATCH = PrefixMatch(block_ids=(), epochs=(), num_tokens=0)


class PrefixCache:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._block_by_hash: dict[int, KVBlock] = {}
        self._epochs = itertools.count(ROOT_EPOCH + 1)

    def __len__(self) -> int:
        return len(self._block_by_hash)

    def match(self, token_ids: SequenceOf[int], max_blocks: int) -> PrefixMatch:
        """Longest verified run of cached blocks for token_ids[: max_blocks * block_size]."""
        blocks: list[KVBlock] = []
        parent_hash: int | None = None
        parent_epoch = ROOT_EPOCH
        for i in range(max_blocks):
            tokens = tuple(token_ids[i * self.block_size : (i + 1) * self.block_size])
            block_hash = hash_block_tokens(parent_hash, tokens)
            block = self._block_by_hash.get(block_hash)
            if block is None or block.token_ids != tokens or block.parent_epoch != parent_epoch:
                break
            assert block.epoch is not None, f"cached block {block.block_id} has no epoch"
            blocks.append(block)
            parent_hash, parent_epoch = block_hash, block.epoch
        return PrefixMatch(
            block_ids=tuple(b.block_id for b in blocks),
            epochs=tuple(b.epoch for b in blocks if b.epoch is not None),
            num_tokens=len(blocks) * self.block_size,
        )

    def register(self, block: KVBlock, parent: KVBlock | None, token_ids: tuple[int, ...]) -> None:
        """Give a block that just became full of computed tokens its cache identity."""
        assert len(token_ids) == self.block_size, "only full blocks are cached"
        assert not block.is_registered, f"block {block.block_id} is already registered"
        assert parent is None or parent.is_registered, "blocks are registered in order"
        block.parent_epoch = parent.epoch if parent is not None else ROOT_EPOCH
        block.hash = hash_block_tokens(parent.hash if parent is not None else None, token_ids)
        block.token_ids = token_ids
        block.epoch = next(self._epochs)
        # Only a block whose parent is itself cached can ever be hit. Keep an equivalent entry
        # (two sequences computed the same prefix at once) but replace a colliding or
        # orphaned one. A registered block left out of the map is simply never hit.
        is_reachable = parent is None or self.is_cached(parent)
        current = self._block_by_hash.get(block.hash)
        if is_reachable and (current is None or not _same_content(current, block)):
            self._block_by_hash[block.hash] = block

    def is_cached(self, block: KVBlock) -> bool:
        """Reachable by match(): worth keeping when its reference count drops to zero."""
        return block.hash is not None and self._block_by_hash.get(block.hash) is block

    def evict(self, block: KVBlock) -> None:
        """Forget a block that is being handed out fresh."""
        if self.is_cached(block):
            assert block.hash is not None, f"cached block {block.block_id} has no hash"
            del self._block_by_hash[block.hash]
        block.clear_identity()

    def check_integrity(self, blocks: SequenceOf[KVBlock]) -> None:
        for block_hash, block in self._block_by_hash.items():
            assert blocks[block.block_id] is block, f"cache maps to a foreign block {block.block_id}"
            assert block.hash == block_hash, f"block {block.block_id} is cached under a stale hash"
            assert block.is_registered, f"cached block {block.block_id} has no epoch"
            assert block.token_ids is not None and len(block.token_ids) == self.block_size, (
                f"cached block {block.block_id} is not full"
            )
        epochs = [b.epoch for b in blocks if b.epoch is not None]
        assert len(epochs) == len(set(epochs)), "two blocks share an epoch"


def _same_content(a: KVBlock, b: KVBlock) -> bool:
    return a.token_ids == b.token_ids and a.parent_epoch == b.parent_epoch
