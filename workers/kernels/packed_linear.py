"""Linear layers over weights pre-packed once into oneDNN's blocked layout (CPU, bfloat16).

`F.linear` on a bfloat16 CPU weight hands oneDNN a plain (out, in) matrix, which it
re-blocks on every call: decode at small batch then moves the weights about twice per
matmul and runs at half the memory bandwidth. Packing once at load time removes that
(measured with workers/bench: about 2x on the small preset's matmuls at batch 1). The
results are bitwise those of `F.linear` (same kernel, same accumulation order). float32
keeps `F.linear`, whose MKL path needs no packing; float16 packing needs avx512_fp16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# oneDNN picks its kernel by row count; for 1-3 rows it picks a slower one than for 4 (about
# 15% on the small preset's decode matmuls), so fewer rows are padded to this many. The
# padded rows never change the real rows' results (checked in tests). Larger changes of row
# count may switch kernels and move the last bit, as with F.linear: bfloat16 matmuls on
# this path are not batch invariant (float32 ones, which the exactness tests use, are).
MIN_ROWS = 4
# The row count oneDNN tunes the packed layout for; it leaves results unchanged.
_PACK_FOR_ROWS = 16


def pack_weight(weight: torch.Tensor) -> torch.Tensor | None:
    """(out, in) weight -> an opaque oneDNN copy for `packed_linear`, or None where packing
    does not apply (not CPU, not bfloat16, no oneDNN). The caller keeps the plain weight:
    state dicts and the loader read it."""
    if not (weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and weight.dim() == 2
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _PACK_FOR_ROWS)
    except RuntimeError:  # oneDNN refuses this CPU / dtype combination
        return None


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(T, in) -> (T, out), bitwise equal to F.linear(x, weight, bias)."""
    rows = x.shape[0]
    if rows < MIN_ROWS:
        x = F.pad(x, (0, 0, 0, MIN_ROWS - rows))  # (MIN_ROWS, in), zero rows below x
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")[:rows]
