"""Map a Hugging Face config.json (Llama, Mistral, Qwen2) onto ModelConfig.

Accepts both the transformers 4.x rope fields (`rope_theta`, `rope_scaling`) and the 5.x
`rope_parameters` dict. Anything the engine would serve wrongly is refused with an error
naming the file and the field, never ignored.
"""

from __future__ import annotations

from typing import Any

from workers.models.config import SUPPORTED_DTYPES, ModelConfig, RopeScaling
from workers.models.errors import ModelLoadError
from workers.models.generation_config import token_ids

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
_MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_MISSING = object()


def parse_hf_config(cfg: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Map a Hugging Face config.json; unsupported fields raise ModelLoadError naming `source` and the field."""
    arch = _architecture(cfg, source)
    num_heads = _int(cfg, "num_attention_heads", source)
    num_kv_heads = _int(cfg, "num_key_value_heads", source, default=num_heads)
    hidden_size = _int(cfg, "hidden_size", source)
    if num_heads % num_kv_heads != 0:
        raise ModelLoadError(
            f"{source}: num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
        )
    head_dim = cfg.get("head_dim") or hidden_size // num_heads
    if not isinstance(head_dim, int) or head_dim % 2 != 0:
        raise ModelLoadError(f"{source}: head_dim must be an even integer, got {head_dim!r}")

    _refuse(cfg, source, "hidden_act", lambda v: v not in (None, "silu"), "only 'silu' is supported")
    _refuse(cfg, source, "mlp_bias", bool, "MLP biases are not supported")
    _refuse(cfg, source, "quantization_config", lambda v: v is not None, "quantized checkpoints are not supported")
    if arch == "Qwen2ForCausalLM":
        _refuse(cfg, source, "use_sliding_window", bool, "sliding-window attention is not supported")
    else:
        _refuse(cfg, source, "attention_bias", bool, f"attention biases on {arch} are not supported")

    rope_theta, rope_scaling = _rope(cfg, source)
    max_pos = _context_length(cfg, source)
    sliding_window = cfg.get("sliding_window") if arch == "MistralForCausalLM" else None
    if isinstance(sliding_window, int) and sliding_window < max_pos:
        # Full attention equals sliding-window attention while the context fits in the window,
        # so the context limit becomes the window (requests beyond it are refused upstream).
        max_pos = sliding_window

    return ModelConfig(
        vocab_size=_int(cfg, "vocab_size", source),
        hidden_size=hidden_size,
        intermediate_size=_int(cfg, "intermediate_size", source),
        num_layers=_int(cfg, "num_hidden_layers", source),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        max_position_embeddings=max_pos,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention_bias=arch == "Qwen2ForCausalLM",
        bos_token_id=_optional_id(cfg, "bos_token_id", source),
        eos_token_ids=token_ids(cfg, "eos_token_id", source),
        dtype=_dtype(cfg, source),
        architecture=arch,
    )


# Where configs state the context length: max_position_embeddings in Llama, Mistral and
# Qwen2; the others in families converted from elsewhere. The smallest one present wins.
_CONTEXT_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                        "max_seq_length", "seq_len")
DEFAULT_CONTEXT_LENGTH = 2048  # a config that states none (transformers' LlamaConfig default)


def _context_length(cfg: dict[str, Any], source: str) -> int:
    present = [_int(cfg, key, source) for key in _CONTEXT_LENGTH_KEYS if cfg.get(key) is not None]
    return min(present, default=DEFAULT_CONTEXT_LENGTH)


def _architecture(cfg: dict[str, Any], source: str) -> str:
    archs = cfg.get("architectures")
    if not archs:
        model_type = cfg.get("model_type")
        if model_type in _MODEL_TYPES:
            return _MODEL_TYPES[model_type]
        raise ModelLoadError(f"{source}: field 'architectures' is missing and model_type {model_type!r} is unknown")
    if not isinstance(archs, list) or len(archs) != 1:
        raise ModelLoadError(f"{source}: field 'architectures' must list one architecture, got {archs!r}")
    if archs[0] not in SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(
            f"{source}: architecture {archs[0]} is not supported (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return archs[0]


def _rope(cfg: dict[str, Any], source: str) -> tuple[float, RopeScaling | None]:
    params = cfg.get("rope_parameters")
    field = "rope_parameters"
    if params is None:  # transformers 4.x layout
        params = dict(cfg.get("rope_scaling") or {})
        params.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
        field = "rope_scaling"
    if not isinstance(params, dict):
        raise ModelLoadError(f"{source}: field '{field}' must be an object, got {params!r}")
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ModelLoadError(f"{source}: field '{field}.partial_rotary_factor' != 1 is not supported")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        return theta, None
    if rope_type != "llama3":
        raise ModelLoadError(
            f"{source}: field '{field}.rope_type' is {rope_type!r}; supported: 'default', 'llama3'"
        )
    try:
        scaling = RopeScaling(
            factor=float(params["factor"]),
            low_freq_factor=float(params["low_freq_factor"]),
            high_freq_factor=float(params["high_freq_factor"]),
            original_max_position_embeddings=int(params["original_max_position_embeddings"]),
        )
    except KeyError as e:
        raise ModelLoadError(f"{source}: field '{field}.{e.args[0]}' is required for llama3 rope scaling") from None
    return theta, scaling


def _int(cfg: dict[str, Any], key: str, source: str, default: Any = _MISSING) -> int:
    value = cfg.get(key, default)
    if value is _MISSING:
        raise ModelLoadError(f"{source}: required field '{key}' is missing")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelLoadError(f"{source}: field '{key}' must be a positive integer, got {value!r}")
    return value


def _optional_id(cfg: dict[str, Any], key: str, source: str) -> int | None:
    value = cfg.get(key)
    if value is not None and (not isinstance(value, int) or value < 0):
        raise ModelLoadError(f"{source}: field '{key}' must be a token id, got {value!r}")
    return value


def _dtype(cfg: dict[str, Any], source: str) -> str:
    key = "dtype" if cfg.get("dtype") is not None else "torch_dtype"
    value = cfg.get(key) or "float32"
    if value not in SUPPORTED_DTYPES:
        raise ModelLoadError(f"{source}: field '{key}' is {value!r}; supported: {', '.join(SUPPORTED_DTYPES)}")
    return value


def _refuse(cfg: dict[str, Any], source: str, key: str, is_bad: Any, why: str) -> None:
    if key in cfg and is_bad(cfg[key]):
        raise ModelLoadError(f"{source}: field '{key}' = {cfg[key]!r}: {why}")
