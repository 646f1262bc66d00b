"""Pre-packed oneDNN linears (kernels/packed_linear.py) give exactly F.linear's results."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from workers.kernels.packed_linear import MIN_ROWS, PackedWeight, has_onednn_bf16, pack_weight, packed_linear
from workers.layers.linear import Linear
from workers.models.config import ModelConfig
from workers.models.llama import build_model

needs_packing = pytest.mark.skipif(not has_onednn_bf16(), reason="no oneDNN bfloat16 weight packing here")


@needs_packing
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("out_features", "in_features"), [(1280, 768), (768, 3072), (320, 768), (40, 24)])
def test_bitwise_equal_to_f_linear(bias, out_features, in_features):
    dtype = torch.bfloat16
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(out_features, in_features, generator=gen) * 0.02).to(dtype)
    b = torch.randn(out_features, generator=gen).to(dtype) if bias else None
    packed = pack_weight(weight)
    for rows in (1, 2, 7, 16, 64, 300):  # one packing serves every batch size
        x = torch.randn(rows, in_features, generator=gen).to(dtype)
        assert torch.equal(packed_linear(x, packed, b), F.linear(x, weight, b)), f"{rows} rows"


@needs_packing
def test_padding_small_inputs_is_exact():
    """1-3 rows are padded to MIN_ROWS: each row's result is what a MIN_ROWS batch gives it.
    (Across larger changes of row count oneDNN may switch kernels and move the last bit,
    as F.linear does: bfloat16 matmuls are not batch invariant here; float32 ones are.)"""
    gen = torch.Generator().manual_seed(1)
    weight = (torch.randn(6144, 768, generator=gen) * 0.02).to(torch.bfloat16)
    packed = pack_weight(weight)
    x = torch.randn(MIN_ROWS, 768, generator=gen).to(torch.bfloat16)
    full = packed_linear(x, packed, None)
    for rows in range(1, MIN_ROWS):
        out = packed_linear(x[:rows], packed, None)
        assert out.shape == (rows, 6144)
        assert torch.equal(out, full[:rows]), f"{rows} rows"
        assert torch.equal(out, F.linear(F.pad(x[:rows], (0, 0, 0, MIN_ROWS - rows)), weight)[:rows])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_other_dtypes_are_not_packed(dtype):
    layer = Linear(8, 4, bias=False, dtype=dtype)
    assert not layer.pack() and layer.packed is None


def test_bfloat16_on_cpu_is_always_prepared_for_the_cpu_it_runs_on():
    packed = pack_weight(torch.zeros(8, 4, dtype=torch.bfloat16))
    assert packed is not None and packed.kind == ("onednn" if has_onednn_bf16() else "float32")


# -- the float32 copy (AVX2-only CPUs); built by hand, so it runs on every CPU -------------


def _float32_copy(weight: torch.Tensor) -> PackedWeight:
    return PackedWeight("float32", weight.float(), weight)


@pytest.mark.parametrize("bias", [False, True])
def test_float32_copy_matches_a_float32_matmul_rounded_once(bias):
    gen = torch.Generator().manual_seed(2)
    weight = (torch.randn(320, 768, generator=gen) * 0.02).to(torch.bfloat16)
    b = torch.randn(320, generator=gen).to(torch.bfloat16) if bias else None
    packed = _float32_copy(weight)
    for rows in (MIN_ROWS, 7, 64):
        x = torch.randn(rows, 768, generator=gen).to(torch.bfloat16)
        want = F.linear(x.float(), weight.float(), None if b is None else b.float()).to(torch.bfloat16)
        out = packed_linear(x, packed, b)
        assert out.dtype == torch.bfloat16 and torch.equal(out, want), f"{rows} rows"
        # and within bfloat16's rounding of what the bfloat16 matmul gives
        torch.testing.assert_close(out, F.linear(x, weight, b), rtol=1.6e-2, atol=1e-2)


def test_float32_copy_reads_the_bfloat16_weight_below_min_rows():
    gen = torch.Generator().manual_seed(3)
    weight = (torch.randn(64, 32, generator=gen) * 0.02).to(torch.bfloat16)
    packed = PackedWeight("float32", torch.zeros(64, 32), weight)  # a copy that would give zeros
    x = torch.randn(MIN_ROWS - 1, 32, generator=gen).to(torch.bfloat16)
    assert torch.equal(packed_linear(x, packed, None), F.linear(x, weight))
    assert not packed_linear(torch.cat([x, x[:1]]), packed, None).any(), "MIN_ROWS rows read the copy"


@needs_packing
def test_packed_model_gives_the_same_logits():
    config = replace(ModelConfig.preset("tiny"), dtype="bfloat16")
    plain, packed = build_model(config, seed=1), build_model(config, seed=1)
    assert packed.pack_weights() == 4 * config.num_layers + 1  # qkv, o, gate_up, down; tied head
    x = torch.randn(5, config.hidden_size).to(torch.bfloat16)
    with torch.inference_mode():
        for layer_plain, layer_packed in zip(plain.model.layers, packed.model.layers):
            assert torch.equal(layer_plain.mlp(x), layer_packed.mlp(x))
        assert torch.equal(plain.compute_logits(x), packed.compute_logits(x))
