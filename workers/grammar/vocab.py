"""The grammar engine's view of the worker's vocabulary, built once per worker.

llguidance needs every token's bytes to compute masks. The byte-level tokenizer of the
built-in presets is described token by token (ids 0..255 are bytes; the rest are special
tokens, which llguidance marks with a leading 0xFF byte); a Hugging Face tokenizer hands
over its tokenizer.json and llguidance decodes the vocabulary itself (byte-level BPE,
SentencePiece and byte fallback alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import llguidance

from workers.engine.tokenizer import Tokenizer
from workers.tokenizer.byte import ByteTokenizer
from workers.tokenizer.hf import HFTokenizer


class _ByteVocabulary:
    """The TokenizerWrapper protocol for ByteTokenizer."""

    def __init__(self, tokenizer: ByteTokenizer, vocab_size: int, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.tokens = [bytes([i]) for i in range(256)] + [
            b"\xff" + tokenizer.decode([i], skip_special_tokens=False).encode() for i in range(256, vocab_size)
        ]
        self.special_token_ids = list(range(256, vocab_size))

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


@dataclass(frozen=True)
class GrammarVocab:
    tokenizer: llguidance.LLTokenizer
    vocab_size: int  # the model's logits width, which may exceed the tokenizer's vocabulary
    eos_token_ids: tuple[int, ...]
    # The token that is exactly one ASCII byte, for each byte that has one: how the JSON
    # closer spells the characters it chooses.
    byte_tokens: dict[int, int] = field(default_factory=dict)

    @property
    def eos_token_id(self) -> int:
        return self.eos_token_ids[0]

    def token_bytes(self, token_id: int) -> bytes:
        return self.tokenizer.decode_bytes([token_id])


def build_vocab(tokenizer: Tokenizer, vocab_size: int, eos_token_ids: Sequence[int]) -> GrammarVocab:
    """Raises ValueError for a tokenizer the grammar engine cannot read, or one without eos
    (a grammar finishes by allowing only eos)."""
    eos = tuple(eos_token_ids) or ((tokenizer.eos_token_id,) if tokenizer.eos_token_id is not None else ())
    if not eos:
        raise ValueError("structured outputs need an end-of-sequence token; this model has none")
    if isinstance(tokenizer, ByteTokenizer):
        wrapper = llguidance.TokenizerWrapper(_ByteVocabulary(tokenizer, vocab_size, eos[0]))
        ll_tokenizer = llguidance.LLTokenizer(wrapper, n_vocab=vocab_size, eos_token=list(eos))
    elif isinstance(tokenizer, HFTokenizer):
        ll_tokenizer = llguidance.LLTokenizer(tokenizer.to_json(), n_vocab=vocab_size, eos_token=list(eos))
    else:
        raise ValueError(f"structured outputs do not know tokenizer {type(tokenizer).__name__}")
    byte_tokens: dict[int, int] = {}
    for byte in range(0x20, 0x7F):
        ids = ll_tokenizer.tokenize_bytes(bytes([byte]))
        if len(ids) == 1 and ll_tokenizer.decode_bytes(ids) == bytes([byte]):
            byte_tokens[byte] = ids[0]
    return GrammarVocab(ll_tokenizer, vocab_size, eos, byte_tokens)
