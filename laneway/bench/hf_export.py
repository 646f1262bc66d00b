"""A preset's shape as a Hugging Face Llama directory, so every system serves the same weights.

Random weights (seeded) in bfloat16, a config.json any Llama loader reads, and a real
byte-level BPE tokenizer.json trained here on a fixed text, sized to the preset's
vocabulary. Needs transformers and tokenizers (both in Laneway's worker dependencies);
nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

from workers.models.config import PRESETS

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2
_CORPUS = [
    "Batching buys throughput by spending queue time, and the endpoint decides how much queue time is legal.",
    "A product-blind server that tunes one global batch window makes inline completions feel sticky.",
    "The quick brown fox jumps over the lazy dog while the scheduler plans the next step of the engine.",
    "Tokens stream back over gRPC; the gateway turns them into server-sent events or one JSON body.",
]


def hf_dir_for(model: str, work: Path, log: Callable[[str], None] = lambda _message: None) -> Path:
    """`model` if it is a directory, else the preset of that name exported into `work` (once)."""
    if Path(model).is_dir():
        return Path(model)
    out = work / f"hf-{model}"
    if not (out / "config.json").exists():
        log(f"exporting preset {model!r} as an HF directory in {out} ...")
        export_preset(model, out)
    return out


def export_preset(preset: str, path: Path, seed: int = 0) -> Path:
    """Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json into `path`."""
    import torch
    import transformers

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    path.mkdir(parents=True, exist_ok=True)
    hf_config = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=1, eos_token_id=2, dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config).eval()
    cast(torch.nn.Module, model).to(torch.bfloat16)  # in place: Module.to converts parameters
    model.save_pretrained(path, safe_serialization=True)
    _write_tokenizer(path, cfg.vocab_size)
    return path


def _write_tokenizer(path: Path, vocab_size: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }))
