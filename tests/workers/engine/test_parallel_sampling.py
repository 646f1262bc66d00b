"""n > 1: the samples of one prompt share its KV blocks through the prefix cache.

The first sample (the leader) prefills the prompt; the others wait until its full blocks
are computed, then are admitted with a cache hit and compute only the last partial block.
"""

from __future__ import annotations

import dataclasses

from tests.workers.engine.factories import make_scheduler, make_seq, run_until_done, step
from workers.engine.sequence import Sequence


def _samples(n: int, prompt: list[int], max_tokens: int = 3, **sampling: object) -> list[Sequence]:
    leader = make_seq("req-0", token_ids=prompt, max_tokens=max_tokens)
    if sampling:
        leader.sampling = dataclasses.replace(leader.sampling, **sampling)
    seqs = [leader]
    for i in range(1, n):
        seq = make_seq(f"req-{i}", token_ids=prompt, max_tokens=max_tokens)
        seq.sampling, seq.prompt_leader, seq.choice_index = leader.sampling, leader, i
        seqs.append(seq)
    return seqs


def test_samples_wait_for_the_leader_then_share_its_full_blocks() -> None:
    sched = make_scheduler(num_blocks=32, block_size=4, max_num_seqs=8, max_num_batched_tokens=64)
    prompt = list(range(500, 514))  # 14 tokens: 3 full blocks shareable, the 4th is partial
    seqs = _samples(4, prompt)
    for seq in seqs:
        sched.add(seq)

    first = step(sched)
    assert [(c.seq_id, c.start, c.num_new_tokens) for c in first.chunks] == [("req-0", 0, 14)]
    second = step(sched)
    prefills = [(c.seq_id, c.start, c.num_new_tokens) for c in second.chunks if c.seq_id != "req-0"]
    assert prefills == [("req-1", 12, 2), ("req-2", 12, 2), ("req-3", 12, 2)]
    leader_blocks = seqs[0].block_table[:3]
    for seq in seqs[1:]:
        assert seq.block_table[:3] == leader_blocks, "full prompt blocks are shared"
        assert seq.block_table[3] != seqs[0].block_table[3], "the partial block is each sample's own"
        assert seq.num_cached_tokens == 12
    bm = sched.block_manager
    assert all(bm.blocks[b].ref_count == 4 for b in leader_blocks)
    run_until_done(sched)
    assert bm.num_prefix_hit_tokens == 3 * 12
    assert all(seq.num_output_tokens == 3 for seq in seqs)


def test_a_chunked_prompt_is_computed_once() -> None:
    sched = make_scheduler(num_blocks=64, block_size=4, max_num_seqs=8, max_num_batched_tokens=8)
    prompt = list(range(600, 630))  # 30 tokens in chunks of 8
    seqs = _samples(3, prompt, max_tokens=2)
    for seq in seqs:
        sched.add(seq)
    results = run_until_done(sched)
    computed = sum(c.num_new_tokens for r in results for c in r.chunks)
    # The leader: 30 prompt + 1 decode; each other sample: the 2 tokens past its 28-token hit + 1 decode.
    assert computed == (30 + 1) + 2 * (2 + 1)


def test_samples_go_alone_when_the_leader_is_gone() -> None:
    sched = make_scheduler(num_blocks=32, block_size=4, max_num_seqs=8, max_num_batched_tokens=64)
    seqs = _samples(2, list(range(700, 712)))
    for seq in seqs:
        sched.add(seq)
    sched.abort("req-0")
    result = step(sched)
    assert [(c.seq_id, c.start) for c in result.chunks] == [("req-1", 0)]


def test_no_waiting_without_a_prefix_cache() -> None:
    sched = make_scheduler(num_blocks=32, block_size=4, max_num_seqs=8, max_num_batched_tokens=64,
                           enable_prefix_caching=False)
    for seq in _samples(3, list(range(800, 812))):
        sched.add(seq)
    assert len(step(sched).chunks) == 3


def test_prompt_logprobs_compute_the_whole_prompt_for_every_sample() -> None:
    sched = make_scheduler(num_blocks=32, block_size=4, max_num_seqs=8, max_num_batched_tokens=64)
    prompt = list(range(900, 912))
    sched.add(make_seq("warm", token_ids=prompt, max_tokens=1))
    run_until_done(sched)  # the prompt's blocks are cached now
    seqs = _samples(2, prompt, prompt_logprobs=0)
    for seq in seqs:
        sched.add(seq)
    result = step(sched)
    assert [(c.seq_id, c.start, c.num_new_tokens) for c in result.chunks] == [("req-0", 0, 12), ("req-1", 0, 12)]
