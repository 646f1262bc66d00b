"""What the worker needs from a tokenizer, whichever kind serves the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ChatTemplateError(ValueError):
    """Bad chat input or template (the template's raise_exception, a non-text message...)."""


class Tokenizer(Protocol):
    @property
    def bos_token_id(self) -> int | None: ...

    @property
    def eos_token_id(self) -> int | None: ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """add_special_tokens=False for text rendered by apply_chat_template (it has its own BOS)."""
        ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Incomplete UTF-8 at the end decodes to U+FFFD; the detokenizer holds such text back."""
        ...

    def apply_chat_template(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text for a chat, ending where the assistant's reply begins."""
        ...
