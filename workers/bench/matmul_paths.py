"""The CPU matmul paths for a bfloat16 weight, side by side per row count.

`python -m workers.bench.matmul_paths` times, on the `small` preset's weight shapes and in
one process: `F.linear` on the bfloat16 weight, the path `packed_linear` takes on this CPU
(kernels/packed_linear.py), and a float32 matmul over a float32 copy. It is the evidence
for packed_linear's choice of path by row count; timings are the best of several runs,
since a shared machine only ever makes a run slower.

`--cold-step LAYERS` times instead what a decode step does: every matmul of LAYERS layers
of distinct weights (12 for `small`: 208 MB, more than the L3 cache holds), one after the
other, through oneDNN's packed weights, Laneway's small-matmul kernel and, where the CPU has
AMX, Laneway's AMX kernel, per row count.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from workers.kernels.cpu_extension import load_cpu_extension
from workers.kernels.packed_linear import PackedWeight, has_amx_kernel, onednn_linear, pack_weight, packed_linear

SHAPES = ((1280, 768), (768, 768), (6144, 768), (768, 3072))  # qkv, o, gate_up, down of `small`


def best_ms(fn: Callable[[], object], repeats: int = 5, inner: int = 10) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best * 1e3


def _time_paths(x: torch.Tensor, weight: torch.Tensor, packed: PackedWeight,
                weight32: torch.Tensor) -> tuple[float, float, float, float]:
    return (best_ms(lambda: F.linear(x, weight)), best_ms(lambda: packed_linear(x, packed, None)),
            best_ms(lambda: F.linear(x.float(), weight32).to(torch.bfloat16)),
            best_ms(lambda: torch.ops.laneway.bf16_small_gemm(x, weight).to(torch.bfloat16))
            if load_cpu_extension() and x.shape[0] <= 64 else math.nan)


def cold_step(num_layers: int, rows_list: list[int]) -> None:
    """Every decode matmul of num_layers layers, weights from memory: oneDNN against the kernels."""
    gen = torch.Generator().manual_seed(0)
    weights = [(torch.randn(n, k, generator=gen) * 0.02).to(torch.bfloat16)
               for _ in range(num_layers) for n, k in SHAPES]
    prepared = [pack_weight(w, allow_amx=False) for w in weights]
    packed = [p for p in prepared if p is not None and p.kind == "onednn"]
    if len(packed) < len(weights):
        raise SystemExit("--cold-step compares against oneDNN's packed weights, which this CPU does not take")
    if not load_cpu_extension():
        raise SystemExit("--cold-step needs Laneway's CPU kernels, which did not build here")
    tiled = [pack_weight(w) for w in weights] if has_amx_kernel() else []
    amx = [p for p in tiled if p is not None and p.kind == "amx"]
    megabytes = sum(w.numel() * w.element_size() for w in weights) / 1e6
    print(f"{len(weights)} matmuls, {megabytes:.0f} MB of weights; ms per step (GB/s)")
    print("| rows | oneDNN packed | bf16_small_gemm | AMX kernel |")
    print("|---:|---:|---:|---:|")
    for rows in rows_list:
        xs = {k: torch.randn(rows, k, generator=gen).to(torch.bfloat16) for _, k in SHAPES}
        onednn = best_ms(lambda: [onednn_linear(xs[w.shape[1]], p, None) for w, p in zip(weights, packed)], inner=3)  # noqa: B023
        kernel = best_ms(lambda: [torch.ops.laneway.bf16_small_gemm(xs[w.shape[1]], w) for w in weights],  # noqa: B023
                         inner=3) if rows <= 64 else math.nan
        tiles = best_ms(lambda: [packed_linear(xs[w.shape[1]], p, None) for w, p in zip(weights, amx)],  # noqa: B023
                        inner=3) if amx else math.nan
        print(f"| {rows} | {onednn:.2f} ({megabytes / onednn:.0f}) | {kernel:.2f} ({megabytes / kernel:.0f}) "
              f"| {tiles:.2f} ({megabytes / tiles:.0f}) |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.bench.matmul_paths")
    p.add_argument("--rows", default="1,2,4,8,16,32,64")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--cold-step", type=int, metavar="LAYERS", default=0,
                   help="time a decode step's matmuls over LAYERS layers of distinct weights instead")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.cold_step:
        cold_step(a.cold_step, [int(r) for r in a.rows.split(",")])
        return 0
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads; ms per matmul, summed over the shapes {SHAPES}")
    packed_kind = None
    rows_list = [int(r) for r in a.rows.split(",")]
    totals: dict[int, tuple[float, ...]] = {}
    for out_features, in_features in SHAPES:
        weight = (torch.randn(out_features, in_features, generator=gen) * 0.02).to(torch.bfloat16)
        packed = pack_weight(weight)
        if packed is None:
            raise SystemExit("no prepared path for bfloat16 here (not a CPU build?)")
        packed_kind = packed.kind
        weight32 = weight.float()
        for rows in rows_list:
            x = torch.randn(rows, in_features, generator=gen).to(torch.bfloat16)
            t = _time_paths(x, weight, packed, weight32)
            prev = totals.get(rows, (0.0,) * len(t))
            totals[rows] = tuple(a + b for a, b in zip(prev, t))
    print(f"| rows | F.linear bfloat16 | packed_linear ({packed_kind}) | float32 copy | bf16_small_gemm |")
    print("|---:|---:|---:|---:|---:|")
    for rows, (plain, packed_ms, fp32, kernel) in totals.items():
        print(f"| {rows} | {plain:.2f} | {packed_ms:.2f} | {fp32:.2f} | {kernel:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
