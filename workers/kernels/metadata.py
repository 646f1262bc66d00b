"""Per-step attention metadata for a mixed batch, flattened to one token dimension.

A step holds B sequences; sequence b contributes q_len[b] new tokens (a prefill chunk or
one decode token) and attends to seq_len[b] tokens of context (cached + new). Tokens of
all sequences are concatenated: T = sum(q_len). No padding to the longest sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AttentionMetadata:
    slot_mapping: torch.Tensor  # (T,) int64: pool slot (block_id * block_size + offset) per new token
    query_start_loc: torch.Tensor  # (B + 1,) int32: cumulative q_len, query_start_loc[0] == 0
    seq_lens: torch.Tensor  # (B,) int32: context length after this step's tokens are written
    block_tables: torch.Tensor  # (B, max_num_blocks) int32, rows padded with 0
    query_lens_list: tuple[int, ...]  # host copies so CPU paths need no device sync
    seq_lens_list: tuple[int, ...]
    block_size: int

    @property
    def num_seqs(self) -> int:
        return len(self.seq_lens_list)

    @property
    def num_tokens(self) -> int:
        return sum(self.query_lens_list)

    @property
    def max_query_len(self) -> int:
        return max(self.query_lens_list, default=0)

    @property
    def max_seq_len(self) -> int:
        return max(self.seq_lens_list, default=0)

    @property
    def is_pure_decode(self) -> bool:
        return all(q == 1 for q in self.query_lens_list)
