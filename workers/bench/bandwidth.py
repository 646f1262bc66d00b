"""Memory bandwidth of this machine, measured in the same run as the engine it judges.

Convention (STREAM "copy"): bytes read plus bytes written, over the wall time of one
`dst.copy_(src)` of a buffer far larger than the last-level cache. Best of several
copies, because on a shared machine every disturbance only ever makes a copy slower.
"""

from __future__ import annotations

import time

import torch


def copy_bandwidth(num_bytes: int = 1 << 30, repeats: int = 7, device: torch.device | str = "cpu") -> float:
    """GB/s (1e9 bytes/s), read + write, of copying a `num_bytes` bfloat16 buffer on `device`."""
    src = torch.ones(num_bytes // 2, dtype=torch.bfloat16, device=device)  # written once: every page mapped
    dst = torch.zeros_like(src)
    dst.copy_(src)  # warm-up: first touch and thread start-up
    best = float("inf")
    for _ in range(repeats):
        _synchronize(src)
        start = time.perf_counter()
        dst.copy_(src)
        _synchronize(src)  # a GPU copy is queued, not done, when copy_ returns
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def _synchronize(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)
