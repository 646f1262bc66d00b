from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.workers.models.hf_factories import VARIANTS, save_hf_checkpoint
from tests.workers.models.runner_factories import make_runner, run_chunked
from workers.models.errors import ModelLoadError
from workers.models.loader import load_model
from workers.tokenizer import ByteTokenizer, HFTokenizer

PROMPTS = [list(range(3, 13)), [1, 50, 299, 7, 7, 7, 8], [1, 5, 9, 200, 4], [1, 77]]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    save_hf_checkpoint(path, "llama")
    return path


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_chunked_paged_run_matches_transformers(tmp_path, variant):
    """Prefill in 3-token chunks over 4-token blocks, mixed with other seqs' decodes, then
    decode steps: every sampled row equals transformers' full-sequence forward."""
    hf_model = save_hf_checkpoint(tmp_path, variant)
    model, config, tokenizer = load_model(str(tmp_path))
    assert isinstance(tokenizer, HFTokenizer) and config.architecture == VARIANTS[variant][0]
    runner, alloc = make_runner(model, config, num_blocks=48, block_size=4)
    seqs, rows = run_chunked(runner, alloc, PROMPTS, chunk=3, num_decode=2)
    for seq in seqs:
        with torch.no_grad():
            want = hf_model(torch.tensor([seq.token_ids])).logits[0]  # (L, V)
        assert len(rows[seq.seq_id]) == 3
        for k, row in enumerate(rows[seq.seq_id]):
            torch.testing.assert_close(row, want[seq.num_prompt_tokens + k - 1], atol=1e-4, rtol=1e-4)


def test_sharded_checkpoint_and_dtype_override(tmp_path):
    hf_model = save_hf_checkpoint(tmp_path, "llama", max_shard_size="40KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1 and (tmp_path / "model.safetensors.index.json").exists()
    model, config, _ = load_model(str(tmp_path))
    hf_q = hf_model.model.layers[1].self_attn.q_proj.weight
    assert torch.equal(model.model.layers[1].self_attn.qkv_proj.weight[: config.q_size], hf_q)

    model16, config16, _ = load_model(str(tmp_path), dtype=torch.bfloat16)
    assert config16.dtype == "bfloat16" and all(p.dtype == torch.bfloat16 for p in model16.parameters())
    assert torch.equal(model16.model.norm.weight, hf_model.model.norm.weight.to(torch.bfloat16))


def test_presets_load_with_byte_tokenizer():
    model, config, tokenizer = load_model("tiny", dtype="bfloat16")
    assert isinstance(tokenizer, ByteTokenizer) and tokenizer.vocab_size == config.vocab_size
    assert config.dtype == "bfloat16" and model.model.embed_tokens.weight.dtype == torch.bfloat16
    other, _, _ = load_model("tiny", seed=1)
    assert not torch.equal(model.model.embed_tokens.weight.float(), other.model.embed_tokens.weight)


def test_not_a_preset_nor_a_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="'huge' is neither a model preset .tiny, small. nor a directory"):
        load_model("huge")
    with pytest.raises(ModelLoadError, match="no config.json in"):
        load_model(str(tmp_path))


def test_unsupported_architecture_names_it(tmp_path, llama_dir):
    path = copy_checkpoint(llama_dir, tmp_path / "ckpt")
    raw = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**raw, "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ModelLoadError, match=r"ckpt/config.json: architecture GPT2LMHeadModel is not supported"):
        load_model(str(path))
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not valid JSON"):
        load_model(str(path))


def test_missing_weights_files_and_tokenizer(tmp_path, llama_dir):
    path = copy_checkpoint(llama_dir, tmp_path / "ckpt")
    (path / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer.json in"):
        load_model(str(path))
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"no \*.safetensors weights in .*found PyTorch .bin"):
        load_model(str(path))


def test_missing_unexpected_and_misshapen_weights(tmp_path, llama_dir):
    path = copy_checkpoint(llama_dir, tmp_path / "ckpt")
    weights = load_file(path / "model.safetensors")

    without_up = {k: v for k, v in weights.items() if k != "model.layers.1.mlp.up_proj.weight"}
    save_file(without_up, path / "model.safetensors")
    with pytest.raises(ModelLoadError, match="missing weights: model.layers.1.mlp.up_proj.weight"):
        load_model(str(path))

    save_file({**weights, "model.layers.0.self_attn.o_proj.bias": torch.zeros(64)}, path / "model.safetensors")
    with pytest.raises(ModelLoadError, match="unexpected weight 'model.layers.0.self_attn.o_proj.bias'"):
        load_model(str(path))

    save_file(weights, path / "model.safetensors")
    raw = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**raw, "intermediate_size": 96}))
    shape_error = r"'model.layers.0.mlp.down_proj.weight' has shape \(64, 128\), config.json implies \(64, 96\)"
    with pytest.raises(ModelLoadError, match=shape_error):
        load_model(str(path))


def test_index_listing_an_absent_shard(tmp_path, llama_dir):
    path = copy_checkpoint(llama_dir, tmp_path / "ckpt")
    index = {"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="lists shards that are not in .*model-00002-of-00002"):
        load_model(str(path))


def test_tokenizer_larger_than_embedding_is_refused(tmp_path, llama_dir):
    path = copy_checkpoint(llama_dir, tmp_path / "ckpt")
    raw = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**raw, "vocab_size": 200}))
    with pytest.raises(ModelLoadError, match="tokenizer.json has .* tokens but config.json vocab_size is 200"):
        load_model(str(path))
