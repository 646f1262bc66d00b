"""The whole engine (chunked prefill, paged KV, mixed batches, preemption, prefix cache)
gives exactly the greedy tokens of Hugging Face transformers on the same weights."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from tests.workers.engine.engine_factory import greedy_seq, make_engine, run_with_arrivals
from tests.workers.models.hf_factories import save_hf_checkpoint

NUM_NEW = 8


def hf_greedy(model: torch.nn.Module, prompt: list[int], num_new: int) -> list[int]:
    """Reference: full forward over the whole sequence each step, argmax (no KV cache at all)."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(num_new):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):]


def prompts(vocab: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    lengths = [1, 3, 4, 5, 9, 13, 17, 30]  # around block size 4 and the 7-token budget
    return [[rng.randrange(3, vocab) for _ in range(n)] for n in lengths]


@pytest.fixture(scope="module", params=["llama", "qwen2-bias-tied"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp(request.param)
    model = save_hf_checkpoint(path, request.param, seed=1)
    return path, model


def test_greedy_matches_transformers_with_staggered_arrivals(checkpoint) -> None:
    path, hf_model = checkpoint
    engine = make_engine(str(path), block_size=4, budget=7)
    ps = prompts(hf_model.config.vocab_size)
    # Sequence i arrives at step i, so prefill chunks and decodes share steps.
    arrivals = {i: [greedy_seq(f"s{i}", p, NUM_NEW)] for i, p in enumerate(ps)}
    got = run_with_arrivals(engine, arrivals)
    for i, p in enumerate(ps):
        assert got[f"s{i}"] == hf_greedy(hf_model, p, NUM_NEW), f"prompt {i} (len {len(p)})"
    assert engine.scheduler.block_manager.num_free_blocks == engine.scheduler.block_manager.num_total_blocks


def test_batch_invariance_alone_and_in_a_busy_batch() -> None:
    target = list(range(10, 40))
    alone = run_with_arrivals(make_engine(budget=16), {0: [greedy_seq("t", target, 12)]})["t"]
    busy_engine = make_engine(budget=16)
    others = [greedy_seq(f"o{i}", [50 + i] * (5 + 7 * i), 20) for i in range(6)]
    mixed = run_with_arrivals(busy_engine, {0: others[:3], 2: [greedy_seq("t", target, 12)], 3: others[3:]})
    assert mixed["t"] == alone


def test_preemption_and_recompute_give_undisturbed_output() -> None:
    bulk_prompts = [[20 + i] * 24 for i in range(4)]
    undisturbed = run_with_arrivals(make_engine(num_blocks=256),
                                    {0: [greedy_seq(f"b{i}", p, 16, priority=2) for i, p in enumerate(bulk_prompts)]})
    # 40 blocks of 4 tokens: four bulk sequences (24 + 16 tokens each) cannot all fit alongside
    # an interactive arrival, so some bulk work is preempted and recomputed.
    engine = make_engine(num_blocks=40, budget=16)
    arrivals = {0: [greedy_seq(f"b{i}", p, 16, priority=2, lane="bulk") for i, p in enumerate(bulk_prompts)],
                6: [greedy_seq("hi", [7] * 30, 8, priority=0, preemptible=False, lane="interactive")]}
    seqs = {s.seq_id: s for group in arrivals.values() for s in group}
    got = run_with_arrivals(engine, arrivals)
    assert sum(s.num_preemptions for s in seqs.values()) > 0, "scenario must actually preempt"
    assert seqs["hi"].num_preemptions == 0
    for i in range(4):
        assert got[f"b{i}"] == undisturbed[f"b{i}"]
    alone = run_with_arrivals(make_engine(), {0: [greedy_seq("hi", [7] * 30, 8)]})
    assert got["hi"] == alone["hi"]


def test_prefix_cache_hit_skips_compute_and_keeps_output() -> None:
    shared = list(range(40, 72))  # 32 tokens = 8 full blocks of 4
    first, second = shared + [5, 6, 7], shared + [8, 9]
    cold = make_engine(budget=64)
    cold_out = run_with_arrivals(cold, {0: [greedy_seq("b", second, 6)]})["b"]
    cold_computed = cold.runner.stats.num_computed_tokens

    warm = make_engine(budget=64)
    run_with_arrivals(warm, {0: [greedy_seq("a", first, 6)]})
    before = warm.runner.stats.num_computed_tokens
    seq_b = greedy_seq("b", second, 6)
    warm_out = run_with_arrivals(warm, {0: [seq_b]})["b"]
    assert warm_out == cold_out
    assert seq_b.num_cached_tokens == 32
    assert warm.runner.stats.num_computed_tokens - before == cold_computed - 32


def test_seeded_sampling_is_batch_independent() -> None:
    from workers.engine.sequence import SamplingParams, Sequence

    def seeded() -> Sequence:
        return Sequence("r", [1, 2, 3, 4, 5], SamplingParams(max_tokens=10, temperature=0.9, top_p=0.95, seed=7,
                                                             ignore_eos=True))
    alone = run_with_arrivals(make_engine(), {0: [seeded()]})["r"]
    crowd = [greedy_seq(f"x{i}", [9 + i] * 11, 10) for i in range(5)]
    mixed = run_with_arrivals(make_engine(), {0: crowd[:2], 1: [seeded()], 2: crowd[2:]})["r"]
    assert mixed == alone
