"""The one error a tokenizer raises on bad chat input (the engine's Tokenizer protocol says which)."""

from __future__ import annotations


class ChatTemplateError(ValueError):
    """Bad chat input or template (the template's raise_exception, a non-text message...)."""
