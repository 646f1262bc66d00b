"""The context length a worker serves (`--max-model-len`, default auto), decided once at start-up.

auto: the model's own context (max_position_embeddings, or the alternative its config
names), bounded by what the KV pool holds, so one sequence of full length always fits.
A number overrides it: above the model's context it is cut to that (with a warning);
above what the KV pool holds it stops the worker, naming the flag to change.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

log = logging.getLogger("laneway.worker")
AUTO = "auto"


@dataclass(frozen=True)
class ContextLength:
    max_model_len: int
    why: str  # which bound won, for the start-up log
    is_cut: bool = False  # an explicit --max-model-len above the model's context was lowered


def parse_max_model_len(text: str) -> int | None:
    """'auto' -> None; a positive integer -> itself (an argparse `type=`: bad text is a usage error)."""
    if text.strip().lower() == AUTO:
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-model-len takes a number of tokens or 'auto', not {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"--max-model-len {value}: needs room for a prompt token and an output token")
    return value


def resolve_max_model_len(requested: int | None, model_len: int, kv_tokens: int) -> ContextLength:
    """requested: --max-model-len (None: auto); model_len: the model's context in tokens;
    kv_tokens: tokens the KV pool holds. Raises SystemExit when the pool is too small."""
    if requested is None:
        if kv_tokens < 2:
            raise SystemExit(f"the KV cache holds {kv_tokens} tokens, not one sequence; raise --kv-cache-memory")
        if kv_tokens < model_len:
            return ContextLength(kv_tokens, f"bounded by the KV cache, which holds {kv_tokens} tokens (the model "
                                            f"supports {model_len}; raise --kv-cache-memory for more)")
        return ContextLength(model_len, f"the model's context length (the KV cache holds {kv_tokens} tokens)")
    if requested > model_len:
        length = ContextLength(model_len, f"the model's context length: --max-model-len {requested} is more than "
                                          f"the model supports", is_cut=True)
    else:
        length = ContextLength(requested, f"set by --max-model-len (the model supports {model_len})")
    if length.max_model_len > kv_tokens:
        raise SystemExit(f"--max-model-len {requested}: the KV cache holds {kv_tokens} tokens, less than one "
                         f"{length.max_model_len}-token sequence; raise --kv-cache-memory or lower --max-model-len")
    return length


def log_context_length(context: ContextLength) -> None:
    """The start-up line saying which bound decided the context length."""
    log.log(logging.WARNING if context.is_cut else logging.INFO, "max_model_len %d: %s", context.max_model_len,
            context.why)
