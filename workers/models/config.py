"""Model shape as a frozen dataclass, with named presets for the built-in random-weight models.

Presets use the byte-level tokenizer's ids (workers.tokenizer.byte): 0..255 bytes, then
bos/eos/pad, then reserved ids up to vocab_size, so every id a preset can emit decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from workers.models.errors import ModelLoadError
from workers.models.generation_config import SamplingDefaults

SUPPORTED_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1 frequency scaling: long wavelengths slowed by `factor`, short ones kept."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int = 0  # 0: hidden_size // num_heads (checkpoints may give any other value)
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # Qwen2: biases on q/k/v projections (never on o_proj)
    bos_token_id: int | None = None  # config.json's; prompts get the tokenizer's BOS, not this
    # Every id that ends a sequence: generation_config.json's, config.json's and the
    # tokenizer's eos, in that order (several in Llama 3 instruct checkpoints).
    eos_token_ids: tuple[int, ...] = ()
    sampling_defaults: SamplingDefaults = SamplingDefaults()  # generation_config.json's
    dtype: str = "float32"
    architecture: str = "LlamaForCausalLM"
    name: str = field(default="", compare=False)  # preset name or checkpoint directory

    def __post_init__(self) -> None:
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        # parse_hf_config refuses checkpoints like these with ModelLoadError first, naming the file.
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2 != 0:
            raise ValueError(f"rotary embedding needs an even head_dim, got {self.head_dim}")
        if self.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"dtype {self.dtype!r} not in {SUPPORTED_DTYPES}")

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        if name not in PRESETS:
            raise ModelLoadError(f"unknown model preset {name!r} (presets: {', '.join(PRESETS)})")
        return PRESETS[name]

    def with_dtype(self, dtype: str) -> ModelConfig:
        return replace(self, dtype=dtype)

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def num_parameters(self) -> int:
        """Parameter count from shapes alone, so tests need not build big models."""
        d, i = self.hidden_size, self.intermediate_size
        attn = d * (self.q_size + 2 * self.kv_size) + self.q_size * d
        if self.attention_bias:
            attn += self.q_size + 2 * self.kv_size
        per_layer = attn + 3 * d * i + 2 * d  # + two RMSNorm weights
        embeddings = self.vocab_size * d * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + embeddings + d  # + final norm


_BYTE_VOCAB = 320  # 256 bytes + bos/eos/pad + reserved, a multiple of 64 for the lm_head matmul
_BYTE_BOS, _BYTE_EOS = 256, 257

PRESETS: dict[str, ModelConfig] = {
    # Builds in milliseconds; the default for tests.
    "tiny": ModelConfig(
        vocab_size=_BYTE_VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=_BYTE_BOS,
        eos_token_ids=(_BYTE_EOS,),
        dtype="float32",
        name="tiny",
    ),
    # About 104M parameters: big enough that a step costs real memory bandwidth.
    "small": ModelConfig(
        vocab_size=_BYTE_VOCAB,
        hidden_size=768,
        intermediate_size=3072,
        num_layers=12,
        num_heads=12,
        num_kv_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=_BYTE_BOS,
        eos_token_ids=(_BYTE_EOS,),
        dtype="bfloat16",
        name="small",
    ),
}
