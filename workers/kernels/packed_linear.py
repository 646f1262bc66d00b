"""Linear layers over a bfloat16 CPU weight prepared once for the matmul this CPU does well.

Four preparations, chosen by what the CPU offers (`pack_weight`):

- **AMX tiles** (CPUs with AMX-BF16, where Laneway's kernel built; both dimensions multiples
  of 32). Laneway's own kernel (csrc/amx_gemm.cpp) reads each block of 32 weight rows once
  for every row of x, as tiles laid out by `amx_pack`, in place of oneDNN's copy (the same
  memory). On the 2-core test machine, all 48 matmuls of a `small` decode step from memory
  (208 MB; `python -m workers.bench.matmul_paths --cold-step 12 --rows 1,2,8,32,64,512`):
  9.7 ms against 14.5 for oneDNN's packed weights and 13.7 for the vdpbf16ps kernel at 1
  row, 12.5 against 15.5 at 32, 75 against 133 at 512 (a prefill chunk). Sums are float32
  in the tile unit's order, rounded once: the last bit may differ from `F.linear`'s, and a
  row's result does not depend on the rows beside it.
- **oneDNN blocked layout** (CPUs with avx512bw/vl/dq or avx_ne_convert). `F.linear` on a
  bfloat16 CPU weight hands oneDNN a plain (out, in) matrix, which it re-blocks on every
  call: decode at small batch then moves the weights about twice per matmul and runs at
  half the memory bandwidth. Packing once at load time removes that (about 2x on the small
  preset's matmuls at batch 1). Results are bitwise those of `F.linear`, except where the
  CPU also has AVX512_BF16: there 1-2 rows (decode of one or two streams) read the plain
  weight through Laneway's small-matmul kernel, which multiplies with vdpbf16ps and beats
  oneDNN's small-row kernel (small preset, all 49 decode matmuls of a step from cold
  caches, 2 threads: 5.3 ms against 8.1 at 1 row, 7.6 against 9.6 at 2; oneDNN wins from
  4 rows). Those rows are the float32 product of the bfloat16 values rounded once, as
  oneDNN's are, but summed in another order, so the last bit may differ from `F.linear`.
- **Panels of 16 output columns** (AVX2-only CPUs, where oneDNN refuses bfloat16 packing,
  and Laneway's kernel built). There torch's bfloat16 matmul has no blocked kernel: it costs
  as much per row as one matrix-vector product, so 32 rows take 30x one row. Laneway's panel
  kernel (csrc/panel_gemm.cpp) reads the weight, bfloat16 and packed by `panel_pack`, once
  per call whatever the row count, and multiplies in float32 outer products held in
  registers. On the 2-core AVX2 test machine, the `small` preset's four matmul shapes
  (`python -m workers.bench.matmul_paths --rows 1,2,8,32,64,512`, warm caches): 0.40 ms
  against 0.44 for the row-dot kernel (bf16_small_gemm) at 1 row, 3.6 against 7.3 at 32
  rows, 59 against 64 for MKL on a float32 copy at 512 (a prefill chunk), which this path
  therefore no longer keeps; a decode step's 48 matmuls from memory (`--cold-step 12`):
  6.2 against 9.7 ms at 1 row, 46 against 102 at 32. Each output is summed in k order in float32 and rounded to
  bfloat16 once: a row's result depends neither on the rows beside it nor on the threads.
- **A float32 copy** (no oneDNN bfloat16 packing and no panel kernel: no compiler,
  LANEWAY_CPU_KERNELS=0, or a CPU without AVX2 and FMA). Up to
  SMALL_GEMM_MAX_ROWS rows read the bfloat16 weight through bf16_small_gemm where the
  extension built without AVX2 and FMA; more rows (prefill chunks) run float32 on the copy.
  Without the extension, fewer than MIN_ROWS rows take torch's own bfloat16 product. All
  accumulate in float32 and round to bfloat16 once, as bfloat16 matmuls do. The copy costs
  twice the weight's size in memory, beside the plain weight.

float32 weights keep `F.linear`, whose MKL path needs neither; float16 packing needs avx512_fp16.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from workers.kernels.cpu_extension import load_cpu_extension

# oneDNN picks its kernel by row count; for 1-3 rows it picks a slower one than for 4 (about
# 15% on the small preset's decode matmuls), so fewer rows are padded to this many. The
# padded rows never change the real rows' results (checked in tests). Larger changes of row
# count may switch kernels and move the last bit, as with F.linear: bfloat16 matmuls on
# this path are not batch invariant (float32 ones, which the exactness tests use, are).
# On the float32-copy path without the kernel, fewer rows than this read the bfloat16 weight.
MIN_ROWS = 4
# On the float32-copy path, up to this many rows go through bf16_small_gemm (when it built).
SMALL_GEMM_MAX_ROWS = 32  # measured: the kernel ties the float32 copy at 32 rows with warm caches
# On the oneDNN path with a vdpbf16ps kernel, up to this many rows go through bf16_small_gemm.
ONEDNN_SMALL_GEMM_MAX_ROWS = 2
# The AMX kernel's block: weights with both dimensions a multiple of it take that path.
AMX_BLOCK = 32
# The panel kernel's width: output columns per panel (N is padded up to a multiple).
PANEL = 16
# Within a panel, each k's 16 columns are stored in this order: the kernel widens them with
# two unpacks that work within 128-bit lanes and then holds columns 0-7 and 8-15 in order.
_PANEL_ORDER = (0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15)
# The row count oneDNN tunes the packed layout for; it leaves results unchanged.
_PACK_FOR_ROWS = 16


@dataclass(frozen=True)
class PackedWeight:
    """A weight prepared for this CPU: `amx` (the AMX kernel's tiles, `amx_pack`), `onednn`
    (opaque blocked layout), `panel` (the panel kernel's layout, `panel_pack`) or `float32`,
    a float32 copy; each used beside `plain` (the bfloat16 weight itself, not a copy)."""

    kind: Literal["amx", "onednn", "panel", "float32"]
    data: torch.Tensor
    plain: torch.Tensor

    @property
    def extra_bytes(self) -> int:
        return self.data.numel() * self.data.element_size()


def has_onednn_bf16() -> bool:
    """Does oneDNN take bfloat16 weights on this CPU (avx512bw/vl/dq or avx_ne_convert)?"""
    return _onednn_pack(torch.zeros(2, 2, dtype=torch.bfloat16)) is not None


def _onednn_pack(weight: torch.Tensor) -> torch.Tensor | None:
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _PACK_FOR_ROWS)
    except RuntimeError:  # oneDNN refuses bfloat16 on this CPU
        return None


def pack_weight(weight: torch.Tensor, allow_amx: bool = True) -> PackedWeight | None:
    """(out, in) weight -> a PackedWeight for `packed_linear`, or None where nothing applies
    (not CPU, not a bfloat16 matrix). The caller keeps the plain weight: state dicts and the
    loader read it. `allow_amx=False` prepares what the CPU would get without the AMX kernel
    (benchmarks and tests of the other paths)."""
    if not (weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and weight.dim() == 2):
        return None
    plain = weight.detach()
    if allow_amx and has_amx_kernel() and plain.shape[0] % AMX_BLOCK == 0 and plain.shape[1] % AMX_BLOCK == 0:
        return PackedWeight("amx", amx_pack(plain), plain)
    onednn = _onednn_pack(plain)
    if onednn is not None:
        return PackedWeight("onednn", onednn, plain)
    if has_panel_kernel():
        return PackedWeight("panel", panel_pack(plain), plain)
    return PackedWeight("float32", plain.float(), plain)


def packed_linear(x: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """(T, in) -> (T, out) in x's dtype. oneDNN: bitwise equal to F.linear(x, weight, bias)
    (beyond the vdpbf16ps kernel's rows); AMX: within bfloat16's rounding of it."""
    rows = x.shape[0]
    if packed.kind == "amx":
        if rows == 0 or x.dtype != torch.bfloat16:
            return F.linear(x, packed.plain, bias)
        n = packed.plain.shape[0]
        return _rounded_once(lambda bf16_out: torch.ops.laneway.amx_gemm(x, packed.data, n, bf16_out), x, bias)
    if packed.kind == "panel":
        if rows == 0 or x.dtype != torch.bfloat16:
            return F.linear(x, packed.plain, bias)
        n = packed.plain.shape[0]
        return _rounded_once(lambda bf16_out: torch.ops.laneway.panel_gemm(x, packed.data, n, bf16_out), x, bias)
    if packed.kind == "float32":
        if 0 < rows <= SMALL_GEMM_MAX_ROWS and x.dtype == torch.bfloat16 and load_cpu_extension():
            return _small_gemm(x, packed.plain, bias)
        if rows < MIN_ROWS:
            return F.linear(x, packed.plain, bias)
        out = F.linear(x.float(), packed.data, None if bias is None else bias.float())
        return out.to(x.dtype)
    if 0 < rows <= ONEDNN_SMALL_GEMM_MAX_ROWS and x.dtype == torch.bfloat16 and has_bf16_dot_kernel():
        return _small_gemm(x, packed.plain, bias)
    return onednn_linear(x, packed, bias)


def onednn_linear(x: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """oneDNN on the packed weight (kind "onednn"), fewer than MIN_ROWS rows padded."""
    rows = x.shape[0]
    if rows < MIN_ROWS:
        x = F.pad(x, (0, 0, 0, MIN_ROWS - rows))  # (MIN_ROWS, in), zero rows below x
    return torch.ops.mkldnn._linear_pointwise(x, packed.data, bias, "none", [], "")[:rows]


@functools.cache
def has_amx_kernel() -> bool:
    """Did Laneway's AMX kernel build here, on a CPU (and kernel) that lets the process use AMX?"""
    return load_cpu_extension() and bool(torch.ops.laneway.amx_gemm_available())


def amx_pack(weight: torch.Tensor) -> torch.Tensor:
    """(N, K) bfloat16, N and K multiples of AMX_BLOCK -> the flat layout csrc/amx_gemm.cpp
    reads: [N/32][K/32][16 pairs of k][32 n][2], so each 32-row block's tiles are contiguous."""
    n, k = weight.shape
    return (weight.reshape(n // AMX_BLOCK, AMX_BLOCK, k // AMX_BLOCK, AMX_BLOCK // 2, 2)
            .permute(0, 2, 3, 1, 4).contiguous().reshape(-1))


@functools.cache
def has_panel_kernel() -> bool:
    """Did Laneway's panel kernel build here (a CPU with AVX2 and FMA)?"""
    return load_cpu_extension() and bool(torch.ops.laneway.panel_gemm_available())


def panel_pack(weight: torch.Tensor) -> torch.Tensor:
    """(N, K) bfloat16 -> the flat layout csrc/panel_gemm.cpp reads: [ceil(N/16)][K][16], the
    16 columns of each k in _PANEL_ORDER, N padded with zero rows to a multiple of 16."""
    n, k = weight.shape
    panels = -(-n // PANEL)
    padded = F.pad(weight, (0, 0, 0, panels * PANEL - n))
    order = torch.tensor(_PANEL_ORDER)
    return padded.reshape(panels, PANEL, k)[:, order, :].permute(0, 2, 1).contiguous().reshape(-1)


@functools.cache
def has_bf16_dot_kernel() -> bool:
    """Did Laneway's small-matmul kernel build with vdpbf16ps (AVX512_BF16) here?"""
    return load_cpu_extension() and bool(torch.ops.laneway.bf16_small_gemm_uses_bf16_dot())


def _small_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return _rounded_once(lambda bf16_out: torch.ops.laneway.bf16_small_gemm(x, weight, bf16_out), x, bias)


def _rounded_once(product: Callable[[bool], torch.Tensor], x: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """A kernel's float32 product (`product(bf16_out)`) plus bias, rounded to x's dtype once:
    without a bias the kernel rounds itself, as `.to()` of its float32 result would."""
    if bias is None:
        return product(True)
    return (product(False) + bias.float()).to(x.dtype)
