"""Frozen engine configuration, validated once at start-up (a bad value is a ValueError naming it).

Facts discovered at run time (number of KV blocks that fit the memory budget) live in
`CacheRuntime`, never mutated back into config.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = 64  # cap on sequences in one step
    max_num_batched_tokens: int = 512  # per-step token budget (decodes + prefill chunks)
    # Context length (prompt + output). None ("auto", the worker's default) is decided at
    # start-up from the model and the KV pool (workers/context_length.py); a Scheduler is
    # only ever given the number decided.
    max_model_len: int | None = 2048

    def __post_init__(self) -> None:
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be at least 2, got {self.max_model_len}")
        if self.max_num_seqs <= 0:
            raise ValueError(f"max_num_seqs must be positive, got {self.max_num_seqs}")
        if self.max_num_batched_tokens <= 0:
            raise ValueError(f"max_num_batched_tokens must be positive, got {self.max_num_batched_tokens}")

    @property
    def context_length(self) -> int:
        """max_model_len once decided; asking an undecided ("auto") config is a bug."""
        if self.max_model_len is None:
            raise ValueError("max_model_len 'auto' was never decided (workers/context_length.py)")
        return self.max_model_len


@dataclass(frozen=True)
class CacheConfig:
    block_size: int = 16
    kv_cache_memory_bytes: int | None = None  # None: use kv_cache_memory_fraction of free memory
    kv_cache_memory_fraction: float = 0.1
    enable_prefix_caching: bool = True

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        if not 0.0 < self.kv_cache_memory_fraction <= 0.9:
            raise ValueError(f"kv_cache_memory_fraction must be in (0, 0.9], got {self.kv_cache_memory_fraction}")


@dataclass(frozen=True)
class CacheRuntime:
    num_blocks: int
    block_size: int

    @property
    def num_slots(self) -> int:
        return self.num_blocks * self.block_size
