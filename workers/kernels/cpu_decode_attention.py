"""The fused CPU decode-attention kernel (csrc/decode_attention.cpp), compiled on first use.

Decode attention over the paged pool in plain torch gathers every sequence's K/V blocks
into a padded copy and runs SDPA over three query rows per KV head, which oneDNN serves
badly: at batch 32 it costs more than all the matmuls of the step. The kernel reads each
K/V row once, in place, and keeps q, the scores and the output in registers.

It is part of Laneway's CPU extension (cpu_extension.py). Without a compiler, or with
LANEWAY_CPU_KERNELS=0, `decode_kernel()` is None and the plain torch path runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from workers.kernels.cpu_extension import load_cpu_extension

# (q (B, Hq, D), k_cache, v_cache (N, bs, Hkv, D), block_tables (B, nb) int32, seq_lens (B,) int32, scale)
DecodeKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def decode_kernel() -> DecodeKernel | None:
    return torch.ops.laneway.decode_attention if load_cpu_extension() else None
