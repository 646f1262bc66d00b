"""Byte-level tokenizer for the built-in presets: no vocabulary file, every string encodes.

Ids 0..255 are UTF-8 bytes, 256/257/258 are bos/eos/pad, and the ids above up to
vocab_size are reserved specials (a model's vocab is padded to a matmul-friendly size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.tokenizer.builtin_template import BUILTIN_CHAT_TEMPLATE
from workers.tokenizer.chat_template import ChatTemplate
from workers.tokenizer.errors import ChatTemplateError

BOS_ID, EOS_ID, PAD_ID = 256, 257, 258
_SPECIAL_NAMES = {BOS_ID: "<|bos|>", EOS_ID: "<|eos|>", PAD_ID: "<|pad|>"}


class ByteTokenizer:
    def __init__(self, vocab_size: int = 320) -> None:
        assert vocab_size > PAD_ID, f"byte tokenizer needs vocab_size > {PAD_ID}, got {vocab_size}"
        self._vocab_size = vocab_size
        self._chat_template = ChatTemplate(BUILTIN_CHAT_TEMPLATE, {"bos_token": _SPECIAL_NAMES[BOS_ID],
                                                                  "eos_token": _SPECIAL_NAMES[EOS_ID]})

    @property
    def bos_token_id(self) -> int:
        return BOS_ID

    @property
    def eos_token_id(self) -> int:
        return EOS_ID

    @property
    def pad_token_id(self) -> int:
        return PAD_ID

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [BOS_ID, *ids] if add_special_tokens else ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        pieces: list[str] = []
        run = bytearray()  # consecutive byte ids decode together, so multibyte characters survive
        for i in ids:
            if not 0 <= i < self._vocab_size:
                raise ValueError(f"token id {i} outside the byte tokenizer's vocab [0, {self._vocab_size})")
            if i < 256:
                run.append(i)
            elif not skip_special_tokens:
                pieces.append(run.decode("utf-8", errors="replace"))
                run.clear()
                pieces.append(_SPECIAL_NAMES.get(i, f"<|reserved_{i}|>"))
        pieces.append(run.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def apply_chat_template(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        for index, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if not isinstance(role, str) or not isinstance(content, str):
                raise ChatTemplateError(f"messages[{index}] needs a string 'role' and a string 'content'")
        return self._chat_template.render(messages, add_generation_prompt=True, tools=tools)
