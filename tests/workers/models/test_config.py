from __future__ import annotations

import re
from dataclasses import replace

import pytest

from workers.models.config import PRESETS, ModelConfig, RopeScaling
from workers.models.errors import ModelLoadError
from workers.models.hf_config import parse_hf_config
from workers.models.llama import build_model

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 512,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": [2, 9],
    "dtype": "bfloat16",
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
}


def test_presets():
    tiny, small = ModelConfig.preset("tiny"), ModelConfig.preset("small")
    assert tiny.head_dim == 16 and tiny.dtype == "float32"
    assert 90e6 <= small.num_parameters <= 110e6, small.num_parameters
    assert small.dtype == "bfloat16" and small.max_position_embeddings == 2048
    assert tiny.vocab_size > 258 and tiny.eos_token_id == 257
    with pytest.raises(ModelLoadError, match="unknown model preset 'huge'.*tiny, small"):
        ModelConfig.preset("huge")


@pytest.mark.parametrize("name", ["tiny"])
def test_parameter_count_matches_the_built_model(name):
    model = build_model(PRESETS[name])
    assert sum(p.numel() for p in model.parameters()) == PRESETS[name].num_parameters
    untied = replace(PRESETS[name], tie_word_embeddings=False, attention_bias=True)
    assert sum(p.numel() for p in build_model(untied).parameters()) == untied.num_parameters


def test_llama_mapping_transformers5_layout():
    config = parse_hf_config(LLAMA)
    assert (config.num_layers, config.num_heads, config.num_kv_heads, config.head_dim) == (2, 4, 2, 16)
    assert config.rope_theta == 500000.0 and config.rope_scaling is None
    assert config.eos_token_ids == (2, 9) and config.eos_token_id == 2 and config.bos_token_id == 1
    assert config.dtype == "bfloat16" and not config.attention_bias and not config.tie_word_embeddings


def test_llama3_scaling_in_transformers4_layout_and_explicit_head_dim():
    raw = {k: v for k, v in LLAMA.items() if k not in ("rope_parameters", "dtype")}
    raw |= {
        "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        "torch_dtype": "float16",
        "head_dim": 24,
    }
    config = parse_hf_config(raw)
    assert config.rope_scaling == RopeScaling(8.0, 1.0, 4.0, 64)
    assert config.head_dim == 24 and config.q_size == 96 and config.dtype == "float16"


def test_qwen2_and_mistral():
    qwen = parse_hf_config({**LLAMA, "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": False,
                                        "sliding_window": 32, "tie_word_embeddings": True})
    assert qwen.attention_bias and qwen.tie_word_embeddings and qwen.max_position_embeddings == 512
    mistral = parse_hf_config({**LLAMA, "architectures": ["MistralForCausalLM"], "sliding_window": 256})
    assert not mistral.attention_bias and mistral.max_position_embeddings == 256
    without_window = parse_hf_config(
        {**LLAMA, "architectures": ["MistralForCausalLM"], "sliding_window": None}
    )
    assert without_window.max_position_embeddings == 512


def test_context_length_from_the_usual_fields():
    without = {k: v for k, v in LLAMA.items() if k != "max_position_embeddings"}
    assert parse_hf_config(without).max_position_embeddings == 2048  # none stated: transformers' default
    assert parse_hf_config({**without, "seq_length": 8192}).max_position_embeddings == 8192
    assert parse_hf_config({**LLAMA, "max_sequence_length": 300}).max_position_embeddings == 300  # the smallest
    with pytest.raises(ModelLoadError, match="field 'n_positions' must be a positive integer"):
        parse_hf_config({**LLAMA, "n_positions": "long"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architectures": ["GPT2LMHeadModel"]}, "architecture GPT2LMHeadModel is not supported.*LlamaForCausalLM"),
        ({"hidden_act": "gelu"}, "'hidden_act'"),
        ({"mlp_bias": True}, "'mlp_bias'"),
        ({"attention_bias": True}, "'attention_bias'"),
        ({"quantization_config": {"quant_method": "awq"}}, "'quantization_config'"),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "'rope_parameters.rope_type' is 'yarn'"),
        ({"rope_parameters": {"rope_type": "llama3", "factor": 8.0}}, "'rope_parameters.low_freq_factor'"),
        ({"num_key_value_heads": 3}, "not a multiple of num_key_value_heads 3"),
        ({"vocab_size": "300"}, "'vocab_size' must be a positive integer"),
        ({"dtype": "float64"}, "'dtype' is 'float64'"),
        ({"eos_token_id": "x"}, "'eos_token_id'"),
        ({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": True}, "'use_sliding_window'"),
    ],
)
def test_unsupported_fields_are_named(change, message):
    with pytest.raises(ModelLoadError, match=rf"/ckpt/config.json: .*{message}"):
        parse_hf_config({**LLAMA, **change}, source="/ckpt/config.json")


def test_missing_field_is_named():
    raw = {k: v for k, v in LLAMA.items() if k != "num_hidden_layers"}
    with pytest.raises(ModelLoadError, match="required field 'num_hidden_layers' is missing"):
        parse_hf_config(raw)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"num_kv_heads": 3}, "num_heads 4 must be a multiple of num_kv_heads 3"),
        ({"head_dim": 15}, "even head_dim, got 15"),
        ({"dtype": "int8"}, "dtype 'int8' not in"),
    ],
)
def test_a_model_config_the_engine_cannot_run_is_a_value_error(change, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        replace(PRESETS["tiny"], **change)
