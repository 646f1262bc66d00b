from __future__ import annotations

import pytest

from workers.tokenizer import ByteTokenizer, ChatTemplateError


@pytest.mark.parametrize("text", ["hello", "", "héllo ✓ 日本", "emoji 🦘 and\nnewlines\t"])
def test_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids[0] == tok.bos_token_id
    assert ids[1:] == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.encode(text, add_special_tokens=False) == ids[1:]


def test_ids_and_vocab():
    tok = ByteTokenizer(vocab_size=320)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.vocab_size) == (256, 257, 258, 320)
    assert tok.encode("A", add_special_tokens=False) == [65]


def test_incomplete_utf8_decodes_with_replacement():
    tok = ByteTokenizer()
    ids = tok.encode("日", add_special_tokens=False)  # three bytes
    assert tok.decode(ids[:2]) == "\ufffd"
    assert tok.decode(ids) == "日"


def test_special_tokens_skipped_or_named():
    tok = ByteTokenizer()
    ids = [256, *b"hi", 257, 300]
    assert tok.decode(ids) == "hi"
    assert tok.decode(ids, skip_special_tokens=False) == "<|bos|>hi<|eos|><|reserved_300|>"


def test_decode_refuses_ids_outside_vocab():
    with pytest.raises(ValueError, match="320"):
        ByteTokenizer(vocab_size=320).decode([65, 320])


def test_chat_template():
    tok = ByteTokenizer()
    text = tok.apply_chat_template([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert text == "<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n"
    with pytest.raises(ChatTemplateError, match=r"messages\[0\]"):
        tok.apply_chat_template([{"role": "user", "content": [{"type": "text"}]}])


def test_chat_template_renders_tools_hermes_style():
    tok = ByteTokenizer()
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    text = tok.apply_chat_template([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                                   tools=tools)
    assert text.startswith("<|system|>\nbe brief\n\nYou may call one or more functions")
    tools_block = '{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}'
    assert f"<tools>\n{tools_block}\n</tools>" in text
    assert text.count("<|system|>") == 1, "the system message joins the tools block"
    assert text.endswith("<|user|>\nhi\n<|assistant|>\n")
