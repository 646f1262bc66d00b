"""The KV-checking fake model must itself catch a wrong layout, or it proves nothing."""

from __future__ import annotations

import pytest

from tests.workers.engine.factories import fake_token, make_scheduler, make_seq
from tests.workers.engine.fake_kv import FakeKVModel


def test_fake_model_catches_a_wrong_block_table() -> None:
    sched = make_scheduler(num_blocks=8, block_size=2, max_num_batched_tokens=64)
    model = FakeKVModel(sched.block_manager, fake_token)
    a = make_seq("a", prompt_len=4, max_tokens=5)
    b = make_seq("b", prompt_len=4, max_tokens=5)
    sched.add(a)
    sched.add(b)
    for _ in range(2):
        output = sched.schedule()
        sched.postprocess(output, model.run(output))
    a.block_table[0], b.block_table[0] = b.block_table[0], a.block_table[0]
    with pytest.raises(AssertionError, match="reads wrong K/V"):
        model.run(sched.schedule())


def test_fake_model_catches_a_write_into_a_shared_block() -> None:
    sched = make_scheduler(num_blocks=8, block_size=2, max_num_batched_tokens=64)
    model = FakeKVModel(sched.block_manager, fake_token)
    a = make_seq("a", token_ids=[1, 2, 3], max_tokens=5)
    sched.add(a)
    output = sched.schedule()
    sched.postprocess(output, model.run(output))
    b = make_seq("b", token_ids=[1, 2, 9], max_tokens=5)
    sched.add(b)
    output = sched.schedule()
    assert b.block_table[0] == a.block_table[0]
    b.num_computed_tokens = 1  # as if the prefix hit were half a block
    with pytest.raises(AssertionError, match="shared or cached block"):
        model.run(output)
