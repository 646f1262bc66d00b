from workers.tokenizer.base import ChatTemplateError, Tokenizer
from workers.tokenizer.byte import ByteTokenizer
from workers.tokenizer.hf import HFTokenizer

__all__ = ["ByteTokenizer", "ChatTemplateError", "HFTokenizer", "Tokenizer"]
