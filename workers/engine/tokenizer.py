"""What the engine side calls on a tokenizer, whichever kind serves the model.

The engine builds a detokenizer per sequence, the servicer's wire module encodes prompts,
renders chats and decodes logprob tokens. Implementations live in workers/tokenizer
(byte-level for the presets, Hugging Face tokenizer.json for checkpoints) and match this
structurally; nothing here imports them, so the engine loads without tokenizers or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Decoder(Protocol):
    """All the incremental detokenizer needs: special tokens are dropped before decoding."""

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """An unfinished character at the end decodes as U+FFFD (one, or one per byte of the
        run for byte-fallback decoders); the detokenizer holds such text back."""
        ...


class Tokenizer(Decoder, Protocol):
    @property
    def bos_token_id(self) -> int | None: ...

    @property
    def eos_token_id(self) -> int | None: ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """add_special_tokens=False for text rendered by apply_chat_template (it has its own BOS)."""
        ...

    def apply_chat_template(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt text for a chat, ending where the assistant's reply begins. tools: the
        functions the model may call, [{"type": "function", "function": {...}}] as
        transformers passes them to the template (None: no tools).

        Raises ValueError (workers.tokenizer.ChatTemplateError) when the template refuses the
        messages: that is bad request input, answered INVALID_ARGUMENT."""
        ...
