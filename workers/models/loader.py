"""`load_model(spec)`: a preset name or a local Hugging Face checkpoint directory.

A directory must hold config.json, safetensors weights (one file or index-listed shards)
and tokenizer.json; generation_config.json, tokenizer_config.json and
special_tokens_map.json are read when present. Anything missing or unsupported is a
ModelLoadError that names it.

The model stops on every end-of-sequence id any of them names: generation_config.json's
`eos_token_id` (where instruct models list their end-of-turn ids), config.json's, and the
tokenizer's eos token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import torch

from workers.engine.tokenizer import Tokenizer
from workers.models.config import PRESETS, SUPPORTED_DTYPES, ModelConfig
from workers.models.errors import ModelLoadError
from workers.models.generation_config import read_generation_config
from workers.models.hf_config import parse_hf_config
from workers.models.llama import LlamaForCausalLM, build_model, empty_model
from workers.models.weights import load_weights
from workers.tokenizer import ByteTokenizer, ChatTemplateError, HFTokenizer, TokenizerFileError


def load_model(
    spec: str, dtype: str | torch.dtype | None = None, device: torch.device | str = "cpu", seed: int = 0
) -> tuple[LlamaForCausalLM, ModelConfig, Tokenizer]:
    """dtype None keeps the preset's or checkpoint's own; seed only matters for presets."""
    if spec in PRESETS:
        config = PRESETS[spec]
        if dtype is not None:
            config = config.with_dtype(_dtype_name(dtype))
        return build_model(config, seed, device), config, ByteTokenizer(config.vocab_size)

    path = Path(spec)
    if not path.is_dir():
        raise ModelLoadError(f"{spec!r} is neither a model preset ({', '.join(PRESETS)}) nor a directory")
    config = read_model_config(path)
    if dtype is not None:
        config = config.with_dtype(_dtype_name(dtype))
    files = _weight_files(path)
    tokenizer = _read_tokenizer(path, config)
    config = replace(config, eos_token_ids=_union(config.eos_token_ids, [tokenizer.eos_token_id]))
    model = empty_model(config, device)
    load_weights(model, files)
    return model, config, tokenizer


def read_model_config(path: Path) -> ModelConfig:
    """config.json with generation_config.json's eos ids and sampling defaults folded in."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"no config.json in {path}")
    try:
        raw = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{config_path} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{config_path} must hold a JSON object")
    config = parse_hf_config(raw, source=str(config_path))
    generation = read_generation_config(path)
    return replace(config, name=str(path), eos_token_ids=_union(generation.eos_token_ids, config.eos_token_ids),
                   sampling_defaults=generation.sampling)


def _union(*id_lists: Iterable[int | None]) -> tuple[int, ...]:
    """Ids in first-seen order, without repeats or Nones."""
    return tuple(dict.fromkeys(i for ids in id_lists for i in ids if i is not None))


def _weight_files(path: Path) -> list[Path]:
    index_path = path / "model.safetensors.index.json"
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{index_path}: no readable 'weight_map' ({e})") from None
        files = [path / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelLoadError(f"{index_path} lists shards that are not in {path}: {', '.join(missing)}")
        return files
    files = sorted(path.glob("*.safetensors"))
    if not files:
        other = " (found PyTorch .bin weights: convert them to safetensors)" if any(path.glob("*.bin")) else ""
        raise ModelLoadError(f"no *.safetensors weights in {path}{other}")
    return files


def _read_tokenizer(path: Path, config: ModelConfig) -> HFTokenizer:
    if not (path / "tokenizer.json").is_file():
        raise ModelLoadError(f"no tokenizer.json in {path} (only fast tokenizers are supported)")
    try:
        tokenizer = HFTokenizer.from_dir(path)
    except ChatTemplateError as e:
        raise ModelLoadError(
            f"{path}: bad chat template in tokenizer_config.json or chat_template.jinja: {e}"
        ) from None
    except TokenizerFileError as e:
        raise ModelLoadError(str(e)) from None
    except Exception as e:  # the Rust tokenizer raises plain Exception on a bad file
        raise ModelLoadError(f"{path / 'tokenizer.json'} cannot be read: {e}") from None
    if tokenizer.vocab_size > config.vocab_size:
        raise ModelLoadError(
            f"{path / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but config.json vocab_size "
            f"is {config.vocab_size}: ids past the embedding table cannot be served"
        )
    return tokenizer


def _dtype_name(dtype: str | torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in SUPPORTED_DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not supported (supported: {', '.join(SUPPORTED_DTYPES)})")
    return name
