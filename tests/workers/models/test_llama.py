from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.workers.models.runner_factories import make_runner, run_chunked, run_step
from workers.engine.scheduler_output import ScheduledSeq, SchedulerOutput
from workers.engine.sequence import Sequence
from workers.layers.norm import RMSNorm
from workers.layers.rotary import RotaryEmbedding, apply_rotary
from workers.models.config import ModelConfig
from workers.models.llama import build_model

PROMPTS = [[256, *b"hello world"], [256, *"héllo ✓ 日本".encode()], [256, *b"abc"]]


def prompt_logits(seed: int, prompts=PROMPTS) -> list[torch.Tensor]:
    config = ModelConfig.preset("tiny")
    runner, alloc = make_runner(build_model(config, seed=seed), config)
    seqs = [Sequence(f"s{i}", list(p)) for i, p in enumerate(prompts)]
    rows = run_step(runner, alloc, [(s, s.num_tokens) for s in seqs])
    return [rows[s.seq_id] for s in seqs]


def test_forward_shapes():
    config = ModelConfig.preset("tiny")
    model = build_model(config)
    runner, alloc = make_runner(model, config)
    seqs = [Sequence(f"s{i}", list(p)) for i, p in enumerate(PROMPTS)]
    for s in seqs:
        alloc.cover(s, s.num_tokens)
    step = runner.prepare(SchedulerOutput([ScheduledSeq(s, s.num_tokens) for s in seqs]))
    hidden = model(step.input_ids, step.positions, runner.kv_caches, step.md)
    total = sum(len(p) for p in PROMPTS)
    assert hidden.shape == (total, config.hidden_size)
    assert model.compute_logits(hidden).shape == (total, config.vocab_size)
    assert model.compute_logits(hidden).dtype == torch.float32


def test_same_seed_same_weights_and_logits():
    a, b = build_model(ModelConfig.preset("tiny"), seed=3), build_model(ModelConfig.preset("tiny"), seed=3)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    for x, y in zip(prompt_logits(3), prompt_logits(3)):
        assert torch.equal(x, y)


def test_different_seed_different_logits():
    for x, y in zip(prompt_logits(0), prompt_logits(1)):
        assert not torch.allclose(x, y)


def test_logits_are_not_degenerate():
    logits = prompt_logits(0)
    assert all(torch.isfinite(row).all() for row in logits)
    assert all(row.std() > 1e-3 for row in logits)
    assert len({int(row.argmax()) for row in logits}) > 1, "different prompts should prefer different tokens"


def test_preset_dtype_follows_config():
    config = replace(ModelConfig.preset("tiny"), dtype="bfloat16")
    model = build_model(config)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(not p.requires_grad for p in model.parameters())


def test_chunked_prefill_and_decode_match_one_shot():
    """Prefill in 3-token chunks beside other seqs' decodes == each prefix in one shot."""
    config = ModelConfig.preset("tiny")
    model = build_model(config)
    runner, alloc = make_runner(model, config)
    seqs, rows = run_chunked(runner, alloc, PROMPTS, chunk=3, num_decode=2)
    for seq in seqs:
        for k, row in enumerate(rows[seq.seq_id]):
            prefix = seq.token_ids[: seq.num_prompt_tokens + k]
            fresh_runner, fresh_alloc = make_runner(model, config)
            (want,) = prompt_logits_for(fresh_runner, fresh_alloc, prefix)
            torch.testing.assert_close(row, want, atol=1e-5, rtol=1e-5)


def prompt_logits_for(runner, alloc, tokens):
    seq = Sequence("one", list(tokens))
    return list(run_step(runner, alloc, [(seq, seq.num_tokens)]).values())


def test_rms_norm():
    norm = RMSNorm(4, eps=1e-6, dtype=torch.float32)
    norm.weight.copy_(torch.tensor([1.0, 2.0, 1.0, 1.0]))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    rms = (x.pow(2).mean() + 1e-6).sqrt()
    torch.testing.assert_close(norm(x), x / rms * norm.weight)


def test_rotary_relative_positions():
    """Rotating q and k by their positions makes q.k depend only on the distance between them."""
    rope = RotaryEmbedding(head_dim=8, theta=10000.0, scaling=None)
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 8, generator=gen), torch.randn(1, 1, 8, generator=gen)

    def score(qpos: int, kpos: int) -> float:
        cq, sq = rope.lookup(torch.tensor([qpos]), torch.float32)
        ck, sk = rope.lookup(torch.tensor([kpos]), torch.float32)
        return float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum())

    assert score(5, 2) == pytest.approx(score(103, 100), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)
    cos, sin = rope.lookup(torch.tensor([0]), torch.float32)
    torch.testing.assert_close(apply_rotary(q, cos, sin), q)
