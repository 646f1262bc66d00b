"""Copy Hugging Face safetensors weights into a model built by empty_model.

Each checkpoint tensor is read on its own (memory-mapped by safetensors) and copied into
its place, converting dtype on the way, so peak memory is the model plus one tensor.
Split q/k/v and gate/up tensors land in row ranges of the fused projections.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from workers.models.errors import ModelLoadError
from workers.models.llama import LlamaForCausalLM

# Checkpoint tensors that carry nothing the engine needs.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def load_weights(model: LlamaForCausalLM, files: list[Path]) -> None:
    targets = _checkpoint_targets(model)
    pending = set(targets)
    for file in files:
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    if name.endswith(_IGNORED_SUFFIXES) or (name == "lm_head.weight" and model.lm_head is None):
                        continue  # tied checkpoints sometimes store the duplicate head too
                    if name not in targets:
                        raise ModelLoadError(
                            f"{file}: unexpected weight {name!r}; it has no place in a "
                            f"{model.config.architecture} with this config.json"
                        )
                    _copy(f.get_tensor(name), targets[name], name, file)
                    pending.discard(name)
        except SafetensorError as e:
            raise ModelLoadError(f"{file}: not a readable safetensors file ({e})") from None
    if pending:
        names = sorted(pending)
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        raise ModelLoadError(f"checkpoint is missing weights: {', '.join(names[:5])}{more}")


def _copy(tensor: torch.Tensor, dst: torch.Tensor, name: str, file: Path) -> None:
    if tuple(tensor.shape) != tuple(dst.shape):
        raise ModelLoadError(
            f"{file}: weight {name!r} has shape {tuple(tensor.shape)}, config.json implies {tuple(dst.shape)}"
        )
    dst.copy_(tensor)


def _checkpoint_targets(model: LlamaForCausalLM) -> dict[str, torch.Tensor]:
    """Checkpoint name -> the parameter (or row range of a fused one) it fills."""
    config = model.config
    splits = {
        "self_attn.qkv_proj": [("q_proj", config.q_size), ("k_proj", config.kv_size), ("v_proj", config.kv_size)],
        "mlp.gate_up_proj": [("gate_proj", config.intermediate_size), ("up_proj", config.intermediate_size)],
    }
    targets: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        module, _, kind = name.rpartition(".")  # kind: weight | bias
        fused = next((f for f in splits if module.endswith(f)), None)
        if fused is None:
            targets[name] = param.data
            continue
        prefix = module[: -len(fused)] + fused.split(".")[0]  # model.layers.N.self_attn | ...mlp
        start = 0
        for part, rows in splits[fused]:
            targets[f"{prefix}.{part}.{kind}"] = param.data.narrow(0, start, rows)
            start += rows
        assert start == param.shape[0], f"{name}: split rows {start} != fused rows {param.shape[0]}"
    return targets
