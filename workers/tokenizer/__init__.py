"""Tokenizers that match the engine's Tokenizer protocol (workers/engine/tokenizer.py)."""

from workers.tokenizer.byte import ByteTokenizer
from workers.tokenizer.errors import ChatTemplateError, TokenizerFileError
from workers.tokenizer.hf import HFTokenizer

__all__ = ["ByteTokenizer", "ChatTemplateError", "HFTokenizer", "TokenizerFileError"]
