"""ModelRunner (workers/engine/model_runner.py); lives here because it needs a model."""

from __future__ import annotations

import pytest
import torch

from tests.workers.models.runner_factories import make_runner, run_step
from workers.engine.model_runner import sampled_seqs
from workers.engine.scheduler_output import ScheduledSeq, SchedulerOutput
from workers.engine.sequence import Sequence
from workers.models.config import ModelConfig
from workers.models.llama import build_model


@pytest.fixture(scope="module")
def tiny():
    config = ModelConfig.preset("tiny")
    return build_model(config), config


def test_prepare_flattens_chunks_into_positions_slots_and_metadata(tiny):
    runner, _ = make_runner(*tiny, num_blocks=16, block_size=4)
    decode = Sequence("d", list(range(1, 7)))  # 6 tokens, 5 computed: decode position 5
    decode.num_computed_tokens, decode.block_table = 5, [9, 3]
    chunk = Sequence("c", list(range(10, 20)))  # chunk [4, 7) of 10 tokens: no sample yet
    chunk.num_computed_tokens, chunk.block_table = 4, [2, 7, 5]
    fresh = Sequence("f", [40, 41])
    fresh.block_table = [11]
    out = SchedulerOutput([ScheduledSeq(decode, 1), ScheduledSeq(chunk, 3), ScheduledSeq(fresh, 2)])

    step = runner.prepare(out)
    assert step.input_ids.tolist() == [6, 14, 15, 16, 40, 41]
    assert step.positions.tolist() == [5, 4, 5, 6, 0, 1]
    assert step.md.slot_mapping.tolist() == [3 * 4 + 1, 7 * 4 + 0, 7 * 4 + 1, 7 * 4 + 2, 11 * 4, 11 * 4 + 1]
    assert step.md.query_start_loc.tolist() == [0, 1, 4, 6]
    assert step.md.seq_lens.tolist() == [6, 7, 2] and step.md.seq_lens_list == (6, 7, 2)
    assert step.md.query_lens_list == (1, 3, 2)
    assert step.md.block_tables.tolist() == [[9, 3], [2, 7], [11, 0]]
    assert step.sample_indices.tolist() == [0, 5]
    assert [s.seq_id for s in sampled_seqs(out)] == ["d", "f"]

    logits = runner.run(out)
    assert logits.shape == (2, tiny[1].vocab_size)
    assert (decode.num_computed_tokens, chunk.num_computed_tokens) == (5, 4), "the runner never advances seqs"
    assert (runner.stats.num_steps, runner.stats.num_computed_tokens, runner.stats.num_sampled) == (1, 6, 2)


def test_a_step_of_one_token_per_sequence_gives_what_the_general_path_gives(tiny):
    """Decode steps build their tensors from Python lists (model_runner.prepare's fast
    path): the same values and dtypes as the general path, which the chunk above takes."""
    runner, _ = make_runner(*tiny, num_blocks=16, block_size=4)
    decode = Sequence("d", list(range(1, 7)))  # decode position 5
    decode.num_computed_tokens, decode.block_table = 5, [9, 3]
    chunk = Sequence("c", list(range(10, 20)))  # a one-token prompt chunk [4, 5): no sample
    chunk.num_computed_tokens, chunk.block_table = 4, [2, 7]
    late = Sequence("l", list(range(1, 10)))  # decode position 8, third block
    late.num_computed_tokens, late.block_table = 8, [1, 4, 6]
    out = SchedulerOutput([ScheduledSeq(decode, 1), ScheduledSeq(chunk, 1), ScheduledSeq(late, 1)])

    step = runner.prepare(out)
    assert step.input_ids.tolist() == [6, 14, 9]
    assert step.positions.tolist() == [5, 4, 8]
    assert step.md.slot_mapping.tolist() == [3 * 4 + 1, 7 * 4 + 0, 6 * 4 + 0]
    assert step.md.query_start_loc.tolist() == [0, 1, 2, 3]
    assert step.md.block_tables.tolist() == [[9, 3, 0], [2, 7, 0], [1, 4, 6]]
    assert step.sample_indices.tolist() == [0, 2]
    general = runner.prepare(SchedulerOutput([ScheduledSeq(decode, 1), ScheduledSeq(chunk, 3)]))  # not one each
    for name in ("positions", "sample_indices", "input_ids"):
        assert getattr(step, name).dtype == getattr(general, name).dtype, name
    for name in ("slot_mapping", "query_start_loc", "seq_lens", "block_tables"):
        assert getattr(step.md, name).dtype == getattr(general.md, name).dtype, name


def test_prefix_cache_hit_skips_compute_and_gives_the_same_logits(tiny):
    runner, alloc = make_runner(*tiny, num_blocks=32, block_size=4)
    shared = [256, *b"the same prefix"]  # 16 tokens: four full blocks
    first = Sequence("first", shared + list(b"one"))
    run_step(runner, alloc, [(first, first.num_tokens)])
    assert runner.stats.num_computed_tokens == 19

    second = Sequence("second", shared + list(b"two!"))
    second.block_table = first.block_table[:4]  # what the prefix cache hands out
    second.num_computed_tokens = second.num_cached_tokens = 16
    rows = run_step(runner, alloc, [(second, second.num_uncomputed_tokens)])
    assert runner.stats.num_computed_tokens == 19 + 4, "only the 4 uncached tokens were forwarded"

    cold_runner, cold_alloc = make_runner(*tiny, num_blocks=32, block_size=4)
    cold = Sequence("second", shared + list(b"two!"))
    torch.testing.assert_close(rows["second"], run_step(cold_runner, cold_alloc, [(cold, cold.num_tokens)])["second"])


def test_kv_pool_is_owned_and_sized_by_the_runtime(tiny):
    runner, _ = make_runner(*tiny, num_blocks=7, block_size=8)
    assert len(runner.kv_caches) == tiny[1].num_layers
    assert runner.kv_caches[0][0].shape == (7, 8, tiny[1].num_kv_heads, tiny[1].head_dim)


def test_block_table_too_short_is_an_invariant_violation(tiny):
    runner, _ = make_runner(*tiny, num_blocks=8, block_size=4)
    seq = Sequence("s", list(range(1, 10)))
    seq.block_table = [0, 1]  # covers 8 tokens, the chunk needs 9
    with pytest.raises(AssertionError, match="block table has 2 blocks, step needs 3"):
        runner.run(SchedulerOutput([ScheduledSeq(seq, 9)]))
