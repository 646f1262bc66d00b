"""Hugging Face chat templates rendered with jinja2, sandboxed (templates are checkpoint data).

Mirrors the environment transformers gives templates: trim_blocks/lstrip_blocks, loop
controls, a `tojson` that keeps non-ASCII, `raise_exception`, `strftime_now`, and a
pass-through `{% generation %}` block.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from workers.tokenizer.errors import ChatTemplateError


class _GenerationBlock(Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training; render as is."""

    tags = {"generation"}

    def parse(self, parser: Any) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kwargs)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    def __init__(self, source: str, special_tokens: dict[str, str | None]) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, _GenerationBlock]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise ChatTemplateError(f"chat template syntax error at line {e.lineno}: {e.message}") from None
        # bos_token, eos_token, ... as the template expects. A token the tokenizer lacks is
        # left undefined, which renders as "" (as in transformers), never as "None".
        self._special_tokens = {key: value for key, value in special_tokens.items() if value is not None}

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
               tools: list[dict[str, Any]] | None = None) -> str:
        """tools: OpenAI-style [{"type": "function", "function": {...}}], passed to the template
        as transformers passes them (templates without tool support ignore them)."""
        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, tools=tools, **self._special_tokens
            )
        except ChatTemplateError:
            raise
        except (jinja2.TemplateError, TypeError) as e:
            raise ChatTemplateError(f"chat template failed: {e}") from None
