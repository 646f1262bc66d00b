"""Errors of tokenizers: bad chat input (the engine's Tokenizer protocol says which), bad files."""

from __future__ import annotations


class ChatTemplateError(ValueError):
    """Bad chat input or template (the template's raise_exception, a non-text message...)."""


class TokenizerFileError(ValueError):
    """A tokenizer file that cannot be read (raised at load); the message names the file."""
