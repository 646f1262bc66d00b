"""One paged KV block: a reference count plus, once full, its prefix-cache identity."""

from __future__ import annotations

from dataclasses import dataclass

# `parent_epoch` of a sequence's first block: no block comes before it.
ROOT_EPOCH = 0


@dataclass(eq=False)
class KVBlock:
    block_id: int
    ref_count: int = 0
    # Prefix-cache identity, set when the block is full of computed tokens and cleared when
    # the block is handed out fresh. While set, the block's K/V are immutable.
    hash: int | None = None
    token_ids: tuple[int, ...] | None = None
    # Unique per registration (never reused), so "my parent is the block registered as epoch
    # e" stays true even after that block id is evicted and reused for other content.
    epoch: int | None = None
    parent_epoch: int | None = None

    @property
    def is_registered(self) -> bool:
        return self.epoch is not None

    def clear_identity(self) -> None:
        self.hash = None
        self.token_ids = None
        self.epoch = None
        self.parent_epoch = None
