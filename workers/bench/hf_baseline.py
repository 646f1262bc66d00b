"""The baseline: Hugging Face transformers `generate` on the same weights, static batches.

A static batcher takes requests in arrival order, `batch_size` at a time, left-pads the
prompts and generates until the batch's longest requested output is done: short requests
ride along (their extra tokens are wasted) and nobody joins until the batch ends. Only the
requested output tokens count as useful.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from workers.bench.offline import ThroughputResult
from workers.bench.workload import Request
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM

if TYPE_CHECKING:
    from transformers import GenerationMixin  # the bench extra: imported where used


def hf_model(spec: str, model: LlamaForCausalLM, config: ModelConfig) -> GenerationMixin:
    """transformers' LlamaForCausalLM with exactly `model`'s weights, in its dtype."""
    import transformers  # the bench extra: not needed to serve

    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    if Path(spec).is_dir():  # a checkpoint: transformers reads it itself
        return _on_device(transformers.AutoModelForCausalLM.from_pretrained(spec, dtype=dtype).eval(), device)
    assert config.architecture == "LlamaForCausalLM" and not config.attention_bias, (
        f"preset {config.name} is not a plain Llama; give a checkpoint directory instead"
    )
    rope: dict = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling is not None:
        s = config.rope_scaling
        rope = {"rope_type": "llama3", "rope_theta": config.rope_theta, "factor": s.factor,
                "low_freq_factor": s.low_freq_factor, "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings}
    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, head_dim=config.head_dim, rms_norm_eps=config.rms_norm_eps,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=config.tie_word_embeddings,
        rope_parameters=rope, bos_token_id=config.bos_token_id, eos_token_id=None, pad_token_id=None, dtype=dtype,
    )
    hf = transformers.LlamaForCausalLM(hf_config)  # random init, overwritten next (rotary buffers kept)
    hf.load_state_dict(_hf_state_dict(model, config), strict=not config.tie_word_embeddings)
    if config.tie_word_embeddings:
        hf.tie_weights()
    return _on_device(hf.eval(), device)


def _on_device(hf: GenerationMixin, device: torch.device) -> GenerationMixin:
    cast(torch.nn.Module, hf).to(device)  # in place: Module.to moves parameters and buffers
    return hf


def _hf_state_dict(model: LlamaForCausalLM, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Our fused qkv / gate_up rows split back into transformers' separate projections."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if ".qkv_proj." in name:
            q, k, v = tensor.split([config.q_size, config.kv_size, config.kv_size])
            for part, t in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                out[name.replace("qkv_proj", part)] = t.clone()
        elif ".gate_up_proj." in name:
            gate, up = tensor.split(config.intermediate_size)
            out[name.replace("gate_up_proj", "gate_proj")] = gate.clone()
            out[name.replace("gate_up_proj", "up_proj")] = up.clone()
        else:
            out[name] = tensor.clone()
    return out


@torch.inference_mode()
def hf_static_batches(hf: GenerationMixin, requests: list[Request], batch_size: int,
                      pad_id: int) -> ThroughputResult:
    generate_batch(hf, [requests[0].prompt[:8]], 2, pad_id)  # warm-up: kernel selection, allocator
    start = time.perf_counter()
    for i in range(0, len(requests), batch_size):
        batch = requests[i:i + batch_size]
        generate_batch(hf, [r.prompt for r in batch], max(r.output_len for r in batch), pad_id)
    seconds = time.perf_counter() - start
    return ThroughputResult(seconds, sum(r.output_len for r in requests), sum(len(r.prompt) for r in requests))


@torch.inference_mode()
def hf_decode_step_ms(hf: GenerationMixin, prompt: list[int], pad_id: int, num_steps: int = 32,
                      repeats: int = 3) -> float:
    """Batch-1 decode step time of `generate`: two runs that differ only in the number of
    new tokens, so the prefill cancels out. Best of `repeats` for each."""
    short, long = 4, 4 + num_steps
    times = {}
    for n in (short, long):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            generate_batch(hf, [prompt], n, pad_id)
            best = min(best, time.perf_counter() - start)
        times[n] = best
    return (times[long] - times[short]) / num_steps * 1e3


def generate_batch(hf: GenerationMixin, prompts: list[list[int]], max_new_tokens: int, pad_id: int) -> torch.Tensor:
    """One static batch through `generate`: left-padded prompts, greedy, exactly
    `max_new_tokens` new tokens per row (no eos stop). Returns (rows, width + new) ids."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(prompts), width), dtype=torch.int64)
    for row, p in enumerate(prompts):  # left padding: every row's last prompt token is aligned
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    out = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                      do_sample=False, pad_token_id=pad_id, eos_token_id=None)
    assert out.shape[1] == width + max_new_tokens, f"generate stopped early: {out.shape[1] - width} new tokens"
    return out
