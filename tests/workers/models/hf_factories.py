"""Random-weight transformers checkpoints saved to disk, with a trained tokenizer.json beside them."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.workers.tokenizer.factories import write_hf_tokenizer

TINY = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    bos_token_id=1,
    eos_token_id=2,
)

VARIANTS = {
    "llama": ("LlamaForCausalLM", {}),
    "llama3-rope-head-dim": (
        "LlamaForCausalLM",
        {
            "head_dim": 24,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        },
    ),
    "qwen2-bias-tied": ("Qwen2ForCausalLM", {"tie_word_embeddings": True, "num_key_value_heads": 1}),
    "mistral": ("MistralForCausalLM", {"sliding_window": None, "rope_theta": 1000.0}),
}


def save_hf_checkpoint(path: Path, variant: str, seed: int = 0, **save_kwargs) -> torch.nn.Module:
    """Saves model + tokenizer to `path`; returns the transformers model (float32, eval)."""
    import transformers

    arch, overrides = VARIANTS[variant]
    config_cls = getattr(transformers, arch.replace("ForCausalLM", "Config"))
    torch.manual_seed(seed)
    model = getattr(transformers, arch)(config_cls(**{**TINY, **overrides}, attn_implementation="eager"))
    with torch.no_grad():  # HF init leaves norms at 1 and biases at 0: perturb them so their mapping is tested
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.add_(torch.randn_like(param) * 0.1)
            elif name.endswith("bias"):
                param.copy_(torch.randn_like(param) * 0.1)
    model.eval()
    model.save_pretrained(path, safe_serialization=True, **save_kwargs)
    write_hf_tokenizer(path)
    return model
