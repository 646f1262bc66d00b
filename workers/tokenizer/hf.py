"""A Hugging Face `tokenizer.json` (Rust `tokenizers`) with the checkpoint's chat template.

Special tokens come from the tokenizer's own files, as transformers reads them:
tokenizer_config.json, then special_tokens_map.json for keys it lacks. Never from the
model's config.json: Qwen2 writes `"bos_token": null` there on purpose (its prompts have
no BOS) while config.json still names a bos id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as RustTokenizer

from workers.tokenizer.chat_template import ChatTemplate
from workers.tokenizer.errors import ChatTemplateError, TokenizerFileError

_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


class HFTokenizer:
    def __init__(
        self, tokenizer: RustTokenizer, special_tokens: dict[str, str | None], chat_template: str | None
    ) -> None:
        """special_tokens: bos_token/eos_token/... strings (None: the tokenizer has none)."""
        self._tokenizer = tokenizer
        self._bos_token_id = _token_id(tokenizer, special_tokens.get("bos_token"))
        self._eos_token_id = _token_id(tokenizer, special_tokens.get("eos_token"))
        self._chat_template = ChatTemplate(chat_template, special_tokens) if chat_template else None

    @classmethod
    def from_dir(cls, path: str | Path) -> HFTokenizer:
        """Reads tokenizer.json (required); tokenizer_config.json, special_tokens_map.json and
        chat_template.jinja (optional)."""
        path = Path(path)
        tokenizer = RustTokenizer.from_file(str(path / "tokenizer.json"))
        config = _read_json(path / "tokenizer_config.json")
        special_map = _read_json(path / "special_tokens_map.json")
        # A key present with null in tokenizer_config.json means "none": it is not looked up elsewhere.
        special_tokens = {key: _token_content(config[key] if key in config else special_map.get(key))
                          for key in _SPECIAL_TOKEN_KEYS}
        template_path = path / "chat_template.jinja"  # transformers 5 saves the template beside the config
        chat_template = template_path.read_text() if template_path.exists() else _config_template(config)
        return cls(tokenizer, special_tokens, chat_template)

    @property
    def bos_token_id(self) -> int | None:
        return self._bos_token_id

    @property
    def eos_token_id(self) -> int | None:
        return self._eos_token_id

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def to_json(self) -> str:
        """The tokenizer.json text (the grammar engine reads the vocabulary from it)."""
        return self._tokenizer.to_str()

    def apply_chat_template(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        if self._chat_template is None:
            raise ChatTemplateError("this model's tokenizer has no chat template; use the completions API")
        return self._chat_template.render(messages, add_generation_prompt=True, tools=tools)


def _token_content(value: Any) -> str | None:
    """tokenizer_config.json writes special tokens as strings or as AddedToken objects."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _token_id(tokenizer: RustTokenizer, token: str | None) -> int | None:
    return tokenizer.token_to_id(token) if token is not None else None


def _read_json(path: Path) -> dict[str, Any]:
    """An optional file holding a JSON object."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TokenizerFileError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise TokenizerFileError(f"{path} must hold a JSON object")
    return value


def _config_template(config: dict[str, Any]) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None
