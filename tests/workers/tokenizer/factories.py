"""Tiny real tokenizers built in the test (no downloads): a ByteLevel BPE (Llama-3, Qwen2
style) trained on a small corpus, a SentencePiece-style BPE with byte fallback (Llama-2,
Mistral style), and the tokenizer_config.json beside them."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2
CORPUS = ["hello world", "hello there", "the world says hello", "héllo ✓ 日本", "user assistant system"]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role']) }}"
    "{% endif %}"
    "[{{ message['role'] }}] {{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def build_bpe_tokenizer(vocab_size: int = 280, corpus: list[str] = CORPUS) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tokenizer


def write_hf_tokenizer(path: Path, chat_template: str | None = CHAT_TEMPLATE, vocab_size: int = 280) -> Path:
    """tokenizer.json + tokenizer_config.json (special tokens in both spellings HF uses)."""
    path.mkdir(parents=True, exist_ok=True)
    build_bpe_tokenizer(vocab_size).save(str(path / "tokenizer.json"))
    config: dict = {
        "bos_token": "<s>",
        "eos_token": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False, "special": True},
        "unk_token": "<unk>",
    }
    if chat_template is not None:
        config["chat_template"] = chat_template
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


# Pieces of the byte-fallback vocabulary besides the bytes: one CJK character is a piece of
# its own (as common ones are in Llama-2), every other non-ASCII character falls back to bytes.
_FALLBACK_PIECES = ["\u2581", *"abcdefghijklmnopqrstuvwxyz!,.?", "\u4e16", "\u2581h", "\u2581he", "ll", "llo",
                    "\u2581w", "or"]
_FALLBACK_MERGES = [("\u2581", "h"), ("\u2581h", "e"), ("l", "l"), ("ll", "o"), ("\u2581", "w"), ("o", "r")]


def build_byte_fallback_tokenizer() -> Tokenizer:
    """Llama-2 / Mistral shape: spaces become U+2581 with one prepended, ids 3..258 are the
    byte tokens <0x00>..<0xFF>, and the decoder turns a run of byte tokens back into UTF-8
    (one U+FFFD per byte while the run is not valid UTF-8) and strips the leading space."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for piece in _FALLBACK_PIECES:
        vocab[piece] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab, _FALLBACK_MERGES, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    tokenizer.add_special_tokens(SPECIAL_TOKENS)  # already in the vocabulary: same ids, skipped by decode
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tokenizer
