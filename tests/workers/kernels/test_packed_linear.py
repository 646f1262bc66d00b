"""Prepared linears (kernels/packed_linear.py): oneDNN's give exactly F.linear's results, the
AMX kernel's and the float32 copy's a float32 matmul of the bfloat16 values, rounded once."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from workers.kernels.cpu_extension import load_cpu_extension
from workers.kernels.packed_linear import (
    MIN_ROWS,
    ONEDNN_SMALL_GEMM_MAX_ROWS,
    SMALL_GEMM_MAX_ROWS,
    PackedWeight,
    has_amx_kernel,
    has_bf16_dot_kernel,
    has_onednn_bf16,
    has_panel_kernel,
    pack_weight,
    packed_linear,
    panel_pack,
)
from workers.layers.linear import Linear
from workers.models.config import ModelConfig
from workers.models.llama import build_model

needs_kernels = pytest.mark.skipif(not load_cpu_extension(), reason="CPU kernels did not build here")
needs_packing = pytest.mark.skipif(not has_onednn_bf16(), reason="no oneDNN bfloat16 weight packing here")
needs_amx = pytest.mark.skipif(not has_amx_kernel(), reason="no AMX kernel on this CPU")
needs_panels = pytest.mark.skipif(not has_panel_kernel(), reason="no panel kernel (AVX2 and FMA) on this CPU")
# On the oneDNN path, this many rows or fewer go through the vdpbf16ps kernel instead (0: none here).
KERNEL_ROWS = ONEDNN_SMALL_GEMM_MAX_ROWS if has_bf16_dot_kernel() else 0


def _weight_and_bias(seed: int, out_features: int, in_features: int, bias: bool
                     ) -> tuple[torch.Generator, torch.Tensor, torch.Tensor | None]:
    """A seeded generator, a bfloat16 weight of a trained model's scale, and a bias if asked."""
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(out_features, in_features, generator=gen) * 0.02).to(torch.bfloat16)
    b = torch.randn(out_features, generator=gen).to(torch.bfloat16) if bias else None
    return gen, weight, b


def _assert_float32_matmul_rounded_once(got: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                                        packed: PackedWeight) -> None:
    """A kernel's float32 result is the float32 matmul of the bfloat16 values, and
    packed_linear's bfloat16 result is that rounded once (in the kernel: what .to() gives)."""
    assert got.dtype == torch.float32 and got.shape == (x.shape[0], weight.shape[0])
    torch.testing.assert_close(got, F.linear(x.float(), weight.float()), rtol=1e-5, atol=1e-5)
    rounded = packed_linear(x, packed, None)
    assert rounded.dtype == torch.bfloat16 and torch.equal(rounded, got.to(torch.bfloat16))


@needs_packing
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("out_features", "in_features"), [(1280, 768), (768, 3072), (320, 768), (40, 24)])
def test_bitwise_equal_to_f_linear(bias, out_features, in_features):
    """Rows oneDNN computes are bitwise F.linear's; rows the vdpbf16ps kernel takes are within
    bfloat16's rounding of it (the same float32 products, summed in another order)."""
    dtype = torch.bfloat16
    gen, weight, b = _weight_and_bias(0, out_features, in_features, bias)
    packed = pack_weight(weight, allow_amx=False)
    for rows in (1, 2, 3, 7, 16, 64, 300):  # one packing serves every batch size
        x = torch.randn(rows, in_features, generator=gen).to(dtype)
        if rows <= KERNEL_ROWS:
            torch.testing.assert_close(packed_linear(x, packed, b), F.linear(x, weight, b), rtol=1.6e-2, atol=1e-2)
        else:
            assert torch.equal(packed_linear(x, packed, b), F.linear(x, weight, b)), f"{rows} rows"


@needs_packing
@pytest.mark.skipif(not KERNEL_ROWS, reason="the small-matmul kernel has no vdpbf16ps path on this CPU")
@pytest.mark.parametrize("bias", [False, True])
def test_few_rows_on_the_onednn_path_are_the_kernels_product_rounded_once(bias):
    gen, weight, b = _weight_and_bias(6, 1280, 768, bias)
    packed = pack_weight(weight, allow_amx=False)
    assert packed is not None and packed.kind == "onednn"
    x = torch.randn(KERNEL_ROWS + 1, 768, generator=gen).to(torch.bfloat16)
    for rows in range(1, KERNEL_ROWS + 1):
        want = torch.ops.laneway.bf16_small_gemm(x[:rows], weight)
        want = (want if b is None else want + b.float()).to(torch.bfloat16)
        assert torch.equal(packed_linear(x[:rows], packed, b), want), f"{rows} rows"
    more = KERNEL_ROWS + 1  # and one more row is oneDNN's again
    padded = F.pad(x, (0, 0, 0, MIN_ROWS - more))
    assert torch.equal(packed_linear(x[:more], packed, b), F.linear(padded, weight, b)[:more])


@needs_kernels
def test_the_kernel_multiplies_with_vdpbf16ps_exactly_where_the_cpu_has_avx512_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    assert has_bf16_dot_kernel() == ("avx512_bf16" in flags and "avx512bw" in flags)


@needs_packing
def test_padding_small_inputs_is_exact():
    """Rows under MIN_ROWS that oneDNN computes are padded to MIN_ROWS: each row's result is
    what a MIN_ROWS batch gives it. (Across larger changes of row count oneDNN may switch
    kernels and move the last bit, as F.linear does: bfloat16 matmuls are not batch
    invariant here; float32 ones are.)"""
    gen = torch.Generator().manual_seed(1)
    weight = (torch.randn(6144, 768, generator=gen) * 0.02).to(torch.bfloat16)
    packed = pack_weight(weight, allow_amx=False)
    x = torch.randn(MIN_ROWS, 768, generator=gen).to(torch.bfloat16)
    full = packed_linear(x, packed, None)
    for rows in range(KERNEL_ROWS + 1, MIN_ROWS):
        out = packed_linear(x[:rows], packed, None)
        assert out.shape == (rows, 6144)
        assert torch.equal(out, full[:rows]), f"{rows} rows"
        assert torch.equal(out, F.linear(F.pad(x[:rows], (0, 0, 0, MIN_ROWS - rows)), weight)[:rows])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_other_dtypes_are_not_packed(dtype):
    layer = Linear(8, 4, bias=False, dtype=dtype)
    assert not layer.pack() and layer.packed is None


def test_bfloat16_on_cpu_is_always_prepared_for_the_cpu_it_runs_on():
    without_amx = "onednn" if has_onednn_bf16() else "panel" if has_panel_kernel() else "float32"
    packed = pack_weight(torch.zeros(8, 4, dtype=torch.bfloat16))  # not whole AMX blocks
    assert packed is not None and packed.kind == without_amx
    packed = pack_weight(torch.zeros(64, 32, dtype=torch.bfloat16))
    assert packed is not None and packed.kind == ("amx" if has_amx_kernel() else without_amx)
    packed = pack_weight(torch.zeros(64, 32, dtype=torch.bfloat16), allow_amx=False)
    assert packed is not None and packed.kind == without_amx


# -- the float32 copy (AVX2-only CPUs); built by hand, so it runs on every CPU -------------


def _float32_copy(weight: torch.Tensor) -> PackedWeight:
    return PackedWeight("float32", weight.float(), weight)


@pytest.mark.parametrize("bias", [False, True])
def test_float32_copy_matches_a_float32_matmul_rounded_once(bias):
    gen, weight, b = _weight_and_bias(2, 320, 768, bias)
    packed = _float32_copy(weight)
    for rows in (MIN_ROWS, 7, 64):
        x = torch.randn(rows, 768, generator=gen).to(torch.bfloat16)
        want = F.linear(x.float(), weight.float(), None if b is None else b.float()).to(torch.bfloat16)
        out = packed_linear(x, packed, b)
        assert out.dtype == torch.bfloat16 and torch.equal(out, want), f"{rows} rows"
        # and within bfloat16's rounding of what the bfloat16 matmul gives
        torch.testing.assert_close(out, F.linear(x, weight, b), rtol=1.6e-2, atol=1e-2)


def test_float32_copy_reads_the_bfloat16_weight_for_few_rows_and_the_copy_for_many():
    gen = torch.Generator().manual_seed(3)
    weight = (torch.randn(64, 32, generator=gen) * 0.02).to(torch.bfloat16)
    packed = PackedWeight("float32", torch.zeros(64, 32), weight)  # a copy that would give zeros
    few = SMALL_GEMM_MAX_ROWS if load_cpu_extension() else MIN_ROWS - 1
    x = torch.randn(few + 1, 32, generator=gen).to(torch.bfloat16)
    torch.testing.assert_close(packed_linear(x[:few], packed, None), F.linear(x[:few], weight))  # order may differ
    assert not packed_linear(x, packed, None).any(), "more rows read the float32 copy"
    assert packed_linear(x[:0], packed, None).shape == (0, 64)


@needs_packing
def test_packed_model_gives_the_same_logits():
    """Bitwise on oneDNN's packing; within bfloat16's rounding where the AMX kernel took the
    weights (the tiny preset's are whole AMX blocks)."""
    config = replace(ModelConfig.preset("tiny"), dtype="bfloat16")
    plain, packed = build_model(config, seed=1), build_model(config, seed=1)
    assert packed.pack_weights() == 4 * config.num_layers + 1  # qkv, o, gate_up, down; tied head
    kinds = {m.packed.kind for m in packed.modules() if isinstance(m, Linear) and m.packed is not None}
    assert kinds == ({"amx"} if has_amx_kernel() else {"onednn"})

    def same(a: torch.Tensor, b: torch.Tensor) -> None:
        if kinds == {"amx"}:
            torch.testing.assert_close(a, b, rtol=1.6e-2, atol=2e-2)
        else:
            assert torch.equal(a, b)

    x = torch.randn(5, config.hidden_size).to(torch.bfloat16)
    with torch.inference_mode():
        for layer_plain, layer_packed in zip(plain.model.layers, packed.model.layers):
            same(layer_plain.mlp(x), layer_packed.mlp(x))
        same(plain.compute_logits(x), packed.compute_logits(x))


# -- the AMX kernel (csrc/amx_gemm.cpp) -----------------------------------------------------


@needs_amx
@pytest.mark.parametrize("rows", [1, 2, 15, 16, 17, 31, 32, 33, 64, 100])  # tile halves, chunks of 32, tails
@pytest.mark.parametrize(("out_features", "in_features"), [(1280, 768), (320, 768), (768, 3072), (32, 32)])
def test_amx_kernel_is_a_float32_matmul_of_the_bfloat16_values(rows, out_features, in_features):
    gen, weight, _ = _weight_and_bias(rows, out_features, in_features, False)
    packed = pack_weight(weight)
    assert packed is not None and packed.kind == "amx"
    x = torch.randn(rows, in_features, generator=gen).to(torch.bfloat16)
    _assert_float32_matmul_rounded_once(torch.ops.laneway.amx_gemm(x, packed.data, out_features, False),
                                        x, weight, packed)


@needs_amx
def test_amx_kernel_gives_each_row_what_it_gets_alone():
    """A row's sums run in the same order whatever shares its tiles: decode results do not
    depend on how many streams share the step."""
    gen, weight, _ = _weight_and_bias(7, 1280, 768, False)
    packed = pack_weight(weight)
    assert packed is not None
    x = torch.randn(70, 768, generator=gen).to(torch.bfloat16)
    together = packed_linear(x, packed, None)
    for r in (0, 15, 16, 31, 32, 69):
        assert torch.equal(packed_linear(x[r:r + 1], packed, None), together[r:r + 1]), f"row {r}"


@needs_amx
def test_amx_path_adds_the_bias_before_rounding_once_and_takes_empty_inputs():
    gen, weight, b = _weight_and_bias(8, 320, 768, True)
    packed = pack_weight(weight)
    assert packed is not None and packed.kind == "amx" and b is not None
    x = torch.randn(3, 768, generator=gen).to(torch.bfloat16)
    want = (torch.ops.laneway.amx_gemm(x, packed.data, 320, False) + b.float()).to(torch.bfloat16)
    assert torch.equal(packed_linear(x, packed, b), want)
    assert packed_linear(x[:0], packed, b).shape == (0, 320)


@needs_amx
def test_amx_kernel_refuses_what_it_does_not_serve():
    packed = pack_weight(torch.zeros(64, 32, dtype=torch.bfloat16))
    assert packed is not None
    with pytest.raises(RuntimeError, match="multiples of 32"):
        torch.ops.laneway.amx_gemm(torch.zeros(1, 32, dtype=torch.bfloat16), packed.data, 48, True)
    with pytest.raises(RuntimeError, match="packed by amx_pack"):
        torch.ops.laneway.amx_gemm(torch.zeros(1, 32, dtype=torch.bfloat16), packed.data, 32, True)
    with pytest.raises(RuntimeError, match="bfloat16"):
        torch.ops.laneway.amx_gemm(torch.zeros(1, 32), packed.data, 64, True)


@needs_kernels
def test_the_amx_kernel_is_there_exactly_where_the_cpu_has_amx_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    assert has_amx_kernel() == ("amx_bf16" in flags and "amx_tile" in flags)


# -- the small bfloat16 matmul kernel (csrc/bf16_small_gemm.cpp) -----------------------------


@needs_kernels
@pytest.mark.parametrize("rows", [0, 1, 2, 3, 4, 7, 9, 15, 32])  # groups of 4 (AVX2) or 8 rows and what is left
# tails: under 16 (AVX2), a full 32 after the 64s, under 32
@pytest.mark.parametrize(("out_features", "in_features"), [(2304, 768), (33, 770), (17, 96), (5, 7)])
def test_small_gemm_kernel_is_a_float32_matmul_of_the_bfloat16_values(rows, out_features, in_features):
    gen = torch.Generator().manual_seed(rows)
    weight = (torch.randn(out_features, in_features, generator=gen) * 0.02).to(torch.bfloat16)
    x = torch.randn(rows, in_features, generator=gen).to(torch.bfloat16)
    got = torch.ops.laneway.bf16_small_gemm(x, weight)
    assert got.dtype == torch.float32 and got.shape == (rows, out_features)
    torch.testing.assert_close(got, F.linear(x.float(), weight.float()), rtol=1e-5, atol=1e-5)
    rounded = torch.ops.laneway.bf16_small_gemm(x, weight, True)  # rounded in the kernel: what .to() gives
    assert rounded.dtype == torch.bfloat16 and torch.equal(rounded, got.to(torch.bfloat16))


@needs_kernels
def test_small_gemm_kernel_gives_each_row_what_it_gets_alone():
    gen = torch.Generator().manual_seed(4)
    weight = (torch.randn(320, 768, generator=gen) * 0.02).to(torch.bfloat16)
    x = torch.randn(11, 768, generator=gen).to(torch.bfloat16)
    together = torch.ops.laneway.bf16_small_gemm(x, weight)
    for r in range(11):
        assert torch.equal(torch.ops.laneway.bf16_small_gemm(x[r:r + 1], weight), together[r:r + 1])


@needs_kernels
@pytest.mark.parametrize("bias", [False, True])
def test_float32_copy_below_min_rows_uses_the_kernel_and_rounds_once(bias):
    gen, weight, b = _weight_and_bias(5, 64, 48, bias)
    x = torch.randn(2, 48, generator=gen).to(torch.bfloat16)
    want = torch.ops.laneway.bf16_small_gemm(x, weight)
    want = (want if b is None else want + b.float()).to(torch.bfloat16)
    assert torch.equal(packed_linear(x, _float32_copy(weight), b), want)


@needs_kernels
def test_small_gemm_kernel_refuses_what_it_does_not_serve():
    w = torch.zeros(4, 8, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="at most 64 rows"):
        torch.ops.laneway.bf16_small_gemm(torch.zeros(65, 8, dtype=torch.bfloat16), w)
    with pytest.raises(RuntimeError, match="bfloat16"):
        torch.ops.laneway.bf16_small_gemm(torch.zeros(1, 8), w)


# -- the panel kernel (csrc/panel_gemm.cpp); packed by hand, so it runs on every AVX2 CPU ----


def _panels(weight: torch.Tensor) -> PackedWeight:
    return PackedWeight("panel", panel_pack(weight), weight)


@needs_panels
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 13, 32, 100])  # every block height, and blocks of 6 plus tails
# whole panels; a last panel of 1 or 8 columns; panels a few at a time with a tail of 1-3
@pytest.mark.parametrize(("out_features", "in_features"), [(1280, 768), (33, 770), (40, 24), (5, 7), (112, 96)])
def test_panel_kernel_is_a_float32_matmul_of_the_bfloat16_values(rows, out_features, in_features):
    gen, weight, _ = _weight_and_bias(rows, out_features, in_features, False)
    x = torch.randn(rows, in_features, generator=gen).to(torch.bfloat16)
    packed = _panels(weight)
    _assert_float32_matmul_rounded_once(torch.ops.laneway.panel_gemm(x, packed.data, out_features, False),
                                        x, weight, packed)


@needs_panels
def test_panel_kernel_gives_each_row_what_it_gets_alone_whatever_the_threads():
    """Each output is summed in k order, whatever block its row shares or thread takes its
    panel: decode results do not depend on how many streams share the step."""
    gen, weight, _ = _weight_and_bias(9, 1280, 768, False)
    packed = _panels(weight)
    x = torch.randn(23, 768, generator=gen).to(torch.bfloat16)
    together = packed_linear(x, packed, None)
    for r in range(23):
        assert torch.equal(packed_linear(x[r:r + 1], packed, None), together[r:r + 1]), f"row {r}"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(packed_linear(x, packed, None), together)
    finally:
        torch.set_num_threads(threads)


@needs_panels
def test_panel_path_adds_the_bias_before_rounding_once_and_takes_empty_inputs():
    gen, weight, b = _weight_and_bias(10, 320, 768, True)
    assert b is not None
    packed = _panels(weight)
    x = torch.randn(3, 768, generator=gen).to(torch.bfloat16)
    want = (torch.ops.laneway.panel_gemm(x, packed.data, 320, False) + b.float()).to(torch.bfloat16)
    assert torch.equal(packed_linear(x, packed, b), want)
    assert packed_linear(x[:0], packed, b).shape == (0, 320)


@needs_panels
def test_panel_kernel_refuses_a_weight_packed_for_another_shape():
    packed = _panels(torch.zeros(40, 24, dtype=torch.bfloat16))
    with pytest.raises(RuntimeError, match="does not hold"):
        torch.ops.laneway.panel_gemm(torch.zeros(1, 24, dtype=torch.bfloat16), packed.data, 64, True)
    with pytest.raises(RuntimeError, match="does not hold"):
        torch.ops.laneway.panel_gemm(torch.zeros(1, 32, dtype=torch.bfloat16), packed.data, 40, True)


@needs_kernels
def test_the_panel_kernel_is_there_exactly_where_the_cpu_has_avx2_and_fma():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    assert has_panel_kernel() == ("avx2" in flags and "fma" in flags)


@needs_panels
def test_a_model_on_panels_gives_the_logits_of_a_float32_matmul_of_its_weights():
    config = replace(ModelConfig.preset("tiny"), dtype="bfloat16")
    plain, packed = build_model(config, seed=1), build_model(config, seed=1)
    for m in packed.modules():
        if isinstance(m, Linear):
            m.packed = _panels(m.weight)
    x = torch.randn(5, config.hidden_size).to(torch.bfloat16)
    with torch.inference_mode():
        for layer_plain, layer_packed in zip(plain.model.layers, packed.model.layers):
            torch.testing.assert_close(layer_plain.mlp(x), layer_packed.mlp(x), rtol=1.6e-2, atol=2e-2)
