from __future__ import annotations

import json

import pytest

from tests.workers.tokenizer.factories import write_hf_tokenizer
from workers.tokenizer import ChatTemplateError, HFTokenizer, TokenizerFileError


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_hf_tokenizer(tmp_path_factory.mktemp("tok"))


def test_round_trip_and_special_ids(tokenizer_dir):
    tok = HFTokenizer.from_dir(tokenizer_dir)
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    assert tok.vocab_size <= 280
    for text in ["hello world", "héllo ✓ 日本", "unseen words: zebra 🦘"]:
        ids = tok.encode(text)
        assert ids[0] == 1, "post-processor adds BOS"
        assert tok.decode(ids) == text
        assert tok.encode(text, add_special_tokens=False) == ids[1:]
    assert len(tok.encode("hello world", add_special_tokens=False)) < len("hello world"), "BPE merges apply"
    assert tok.decode([1, *tok.encode("hi", add_special_tokens=False), 2], skip_special_tokens=False) == "<s>hi</s>"


def test_chat_template_renders_with_special_tokens(tokenizer_dir):
    tok = HFTokenizer.from_dir(tokenizer_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "héllo"}])
    assert text == "<s>[user] héllo</s>\n[assistant] "


def test_template_raise_exception_becomes_chat_template_error(tokenizer_dir):
    tok = HFTokenizer.from_dir(tokenizer_dir)
    with pytest.raises(ChatTemplateError, match="unknown role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}])


def test_template_is_sandboxed(tmp_path):
    path = write_hf_tokenizer(tmp_path, chat_template="{{ messages.__class__.__mro__ }}")
    tok = HFTokenizer.from_dir(path)
    with pytest.raises(ChatTemplateError):
        tok.apply_chat_template([{"role": "user", "content": "x"}])


def test_jinja_file_and_named_templates(tmp_path):
    path = write_hf_tokenizer(tmp_path / "named", chat_template=None)
    config = json.loads((path / "tokenizer_config.json").read_text())
    config["chat_template"] = [
        {"name": "tool_use", "template": "tools"},
        {"name": "default", "template": "{% for m in messages %}{{ m.content | tojson }}{% endfor %}"},
    ]
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    assert HFTokenizer.from_dir(path).apply_chat_template([{"role": "user", "content": "日本"}]) == '"日本"'

    (path / "chat_template.jinja").write_text("{% generation %}{{ eos_token }}{% endgeneration %}")
    assert HFTokenizer.from_dir(path).apply_chat_template([]) == "</s>"


def test_missing_template_and_special_tokens(tmp_path):
    path = write_hf_tokenizer(tmp_path, chat_template=None)
    (path / "tokenizer_config.json").unlink()
    tok = HFTokenizer.from_dir(path)
    assert (tok.bos_token_id, tok.eos_token_id) == (None, None)  # the loader adds config.json's eos ids
    with pytest.raises(ChatTemplateError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}])


def test_null_bos_in_tokenizer_config_means_no_bos(tmp_path):
    # Qwen2: "bos_token": null, and special_tokens_map.json must not bring one back.
    path = write_hf_tokenizer(tmp_path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "bos_token": None}))
    (path / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    tok = HFTokenizer.from_dir(path)
    assert (tok.bos_token_id, tok.eos_token_id) == (None, 2)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == "[user] hi</s>\n[assistant] "


def test_special_tokens_map_fills_keys_tokenizer_config_lacks(tmp_path):
    path = write_hf_tokenizer(tmp_path)
    (path / "tokenizer_config.json").write_text(json.dumps({"unk_token": "<unk>"}))
    (path / "special_tokens_map.json").write_text(json.dumps({"bos_token": {"content": "<s>"}, "eos_token": "</s>"}))
    assert (HFTokenizer.from_dir(path).bos_token_id, HFTokenizer.from_dir(path).eos_token_id) == (1, 2)


def test_malformed_tokenizer_files_are_named(tmp_path):
    path = write_hf_tokenizer(tmp_path)
    (path / "special_tokens_map.json").write_text("{nope")
    with pytest.raises(TokenizerFileError, match=r"special_tokens_map.json is not valid JSON"):
        HFTokenizer.from_dir(path)
    (path / "special_tokens_map.json").write_text("[]")
    with pytest.raises(TokenizerFileError, match=r"special_tokens_map.json must hold a JSON object"):
        HFTokenizer.from_dir(path)


def test_template_syntax_error_at_load(tmp_path):
    path = write_hf_tokenizer(tmp_path, chat_template="{% for m in messages %}")
    with pytest.raises(ChatTemplateError, match="syntax error"):
        HFTokenizer.from_dir(path)


def test_tools_are_passed_to_the_template(tmp_path):
    template = "{% for t in tools or [] %}[{{ t.function.name }}]{% endfor %}{{ messages[0]['content'] }}"
    tok = HFTokenizer.from_dir(write_hf_tokenizer(tmp_path, chat_template=template))
    tools = [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]
    assert tok.apply_chat_template([{"role": "user", "content": "x"}], tools=tools) == "[a][b]x"
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]) == "x"
