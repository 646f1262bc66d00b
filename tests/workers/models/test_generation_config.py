"""BOS, end-of-sequence ids and default sampling from a checkpoint's three JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workers.models.hf_factories import save_hf_checkpoint
from tests.workers.models.test_config import LLAMA
from workers.models.errors import ModelLoadError
from workers.models.generation_config import SamplingDefaults, parse_generation_config
from workers.models.loader import load_model, read_model_config
from workers.wire import ModelLimits


def _edit(path: Path, **changes: object) -> None:
    raw = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**raw, **changes}))


def test_eos_ids_and_sampling_are_read() -> None:
    generation = parse_generation_config({"eos_token_id": [128001, 128009], "temperature": 0.6, "top_p": 0.9,
                                          "do_sample": True, "max_new_tokens": 10})
    assert generation.eos_token_ids == (128001, 128009)
    assert generation.sampling == SamplingDefaults(temperature=0.6, top_p=0.9, top_k=None)
    assert parse_generation_config({"eos_token_id": 2, "top_k": 20}).eos_token_ids == (2,)
    assert parse_generation_config({}).sampling == SamplingDefaults()


@pytest.mark.parametrize(("raw", "needle"), [
    ({"eos_token_id": "</s>"}, "field 'eos_token_id' must be a token id or a list of them, got '</s>'"),
    ({"eos_token_id": [2, -1]}, "field 'eos_token_id' must be a token id"),
    ({"temperature": 3.0}, "field 'temperature' must be a number in [0, 2], got 3.0"),
    ({"temperature": "hot"}, "field 'temperature' must be a number"),
    ({"top_p": 0}, "field 'top_p' must be a number in (0, 1], got 0"),
    ({"top_k": -1}, "field 'top_k' must be an integer >= 0 (0: off), got -1"),
])
def test_values_the_engine_cannot_sample_with_name_the_file_and_field(raw: dict, needle: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        parse_generation_config(raw, source="ckpt/generation_config.json")
    assert str(info.value).startswith("ckpt/generation_config.json: ") and needle in str(info.value)


def test_config_and_generation_config_eos_ids_are_united(tmp_path: Path) -> None:
    _edit(tmp_path / "config.json", **{**LLAMA, "eos_token_id": [2, 9]})
    assert read_model_config(tmp_path).eos_token_ids == (2, 9)  # no generation_config.json: config.json's
    _edit(tmp_path / "generation_config.json", eos_token_id=[9, 7], top_k=20)
    config = read_model_config(tmp_path)
    assert config.eos_token_ids == (9, 7, 2)
    assert config.sampling_defaults == SamplingDefaults(top_k=20)
    (tmp_path / "generation_config.json").write_text("{oops")
    with pytest.raises(ModelLoadError, match="generation_config.json is not valid JSON"):
        read_model_config(tmp_path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt")
    save_hf_checkpoint(path, "qwen2-bias-tied")
    return path


def test_a_checkpoint_stops_on_every_eos_and_serves_its_sampling_defaults(checkpoint: Path) -> None:
    # config.json says eos 2 (and bos 1); generation_config.json adds an end-of-turn id;
    # the tokenizer's eos token is a third.
    _edit(checkpoint / "generation_config.json", eos_token_id=[5, 2], temperature=0.7, top_p=0.8)
    _edit(checkpoint / "tokenizer_config.json", eos_token="<unk>")  # id 0
    _, config, tokenizer = load_model(str(checkpoint))
    assert tokenizer.eos_token_id == 0
    assert config.eos_token_ids == (5, 2, 0)
    limits = ModelLimits.of(config, max_model_len=64)
    assert limits.eos_token_ids == (5, 2, 0)
    assert limits.sampling_defaults == SamplingDefaults(temperature=0.7, top_p=0.8)


def test_null_bos_in_tokenizer_config_is_not_replaced_by_config_json(checkpoint: Path) -> None:
    # Qwen2: config.json names bos 1, tokenizer_config.json says there is none.
    assert json.loads((checkpoint / "config.json").read_text())["bos_token_id"] == 1
    _edit(checkpoint / "tokenizer_config.json", bos_token=None)
    _, config, tokenizer = load_model(str(checkpoint))
    assert config.bos_token_id == 1 and tokenizer.bos_token_id is None
