"""The CPU matmul paths for a bfloat16 weight, side by side per row count.

`python -m workers.bench.matmul_paths` times, on the `small` preset's weight shapes and in
one process: `F.linear` on the bfloat16 weight, the path `packed_linear` takes on this CPU
(kernels/packed_linear.py), and a float32 matmul over a float32 copy. It is the evidence
for packed_linear's choice of path by row count; timings are the best of several runs,
since a shared machine only ever makes a run slower.

`--cold-step LAYERS` times instead what a decode step does: every matmul of LAYERS layers
of distinct weights (12 for `small`: 208 MB, more than the L3 cache holds), one after the
other, per row count, through each path this CPU has: oneDNN's packed weights, Laneway's
small-matmul kernel, its panel kernel (AVX2) and its AMX kernel.
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
from workers.kernels.packed_linear import (
    PackedWeight,
    has_amx_kernel,
    has_onednn_bf16,
    has_panel_kernel,
    onednn_linear,
    pack_weight,
    packed_linear,
    panel_pack,
)

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
                weight32: torch.Tensor, panels: torch.Tensor | None) -> tuple[float, ...]:
    n = weight.shape[0]
    return (best_ms(lambda: F.linear(x, weight)), best_ms(lambda: packed_linear(x, packed, None)),
            best_ms(lambda: F.linear(x.float(), weight32).to(torch.bfloat16)),
            best_ms(lambda: torch.ops.laneway.bf16_small_gemm(x, weight, True))
            if load_cpu_extension() and x.shape[0] <= 64 else math.nan,
            best_ms(lambda: torch.ops.laneway.panel_gemm(x, panels, n, True)) if panels is not None else math.nan)


def _step_ms(matmul: Callable[[torch.Tensor, int], torch.Tensor], weights: list[torch.Tensor],
             xs: dict[int, torch.Tensor]) -> float:
    """One pass over every weight (by index), each with the input of its width."""
    return best_ms(lambda: [matmul(xs[w.shape[1]], i) for i, w in enumerate(weights)], inner=3)


def cold_step(num_layers: int, rows_list: list[int]) -> None:
    """Every decode matmul of num_layers layers, weights from memory, through each path here."""
    if not load_cpu_extension():
        raise SystemExit("--cold-step needs Laneway's CPU kernels, which did not build here")
    gen = torch.Generator().manual_seed(0)
    weights = [(torch.randn(n, k, generator=gen) * 0.02).to(torch.bfloat16)
               for _ in range(num_layers) for n, k in SHAPES]
    paths: dict[str, tuple[Callable[[torch.Tensor, int], torch.Tensor], int]] = {}  # name -> (matmul, max rows)
    if has_onednn_bf16():
        onednn = [p for w in weights if (p := pack_weight(w, allow_amx=False)) is not None]
        paths["oneDNN packed"] = (lambda x, i: onednn_linear(x, onednn[i], None), 1 << 30)
    paths["bf16_small_gemm"] = (lambda x, i: torch.ops.laneway.bf16_small_gemm(x, weights[i], True), 64)
    if has_panel_kernel():
        panels = [panel_pack(w) for w in weights]
        paths["panel kernel"] = (
            lambda x, i: torch.ops.laneway.panel_gemm(x, panels[i], weights[i].shape[0], True), 1 << 30)
    if has_amx_kernel():
        tiles = [p for w in weights if (p := pack_weight(w)) is not None]
        paths["AMX kernel"] = (lambda x, i: packed_linear(x, tiles[i], None), 1 << 30)
    megabytes = sum(w.numel() * w.element_size() for w in weights) / 1e6
    print(f"{len(weights)} matmuls, {megabytes:.0f} MB of weights; ms per step (GB/s)")
    print("| rows | " + " | ".join(paths) + " |")
    print("|---:|" + "---:|" * len(paths))
    for rows in rows_list:
        xs = {k: torch.randn(rows, k, generator=gen).to(torch.bfloat16) for _, k in SHAPES}
        cells = []
        for matmul, max_rows in paths.values():
            ms = _step_ms(matmul, weights, xs) if rows <= max_rows else math.nan
            cells.append(f"{ms:.2f} ({megabytes / ms:.0f})")
        print(f"| {rows} | " + " | ".join(cells) + " |")


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
        panels = panel_pack(weight) if has_panel_kernel() else None
        for rows in rows_list:
            x = torch.randn(rows, in_features, generator=gen).to(torch.bfloat16)
            t = _time_paths(x, weight, packed, weight32, panels)
            prev = totals.get(rows, (0.0,) * len(t))
            totals[rows] = tuple(a + b for a, b in zip(prev, t))
    print(f"| rows | F.linear bfloat16 | packed_linear ({packed_kind}) | float32 copy | bf16_small_gemm "
          "| panel kernel |")
    print("|---:|---:|---:|---:|---:|---:|")
    for rows, (plain, packed_ms, fp32, kernel, panel) in totals.items():
        print(f"| {rows} | {plain:.2f} | {packed_ms:.2f} | {fp32:.2f} | {kernel:.2f} | {panel:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
