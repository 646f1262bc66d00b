"""BlockManager: reference counts, on-demand growth, prefix reuse, LRU eviction."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.workers.engine.factories import make_seq
from workers.engine import prefix_cache
from workers.engine.block_manager import BlockManager
from workers.engine.sequence import Sequence


def admit(bm: BlockManager, seq: Sequence) -> None:
    bm.allocate(seq)


def compute(bm: BlockManager, seq: Sequence, num_new_tokens: int | None = None) -> None:
    """What one scheduled chunk does: slots, forward pass, postprocess."""
    if num_new_tokens is None:
        num_new_tokens = seq.num_uncomputed_tokens
    bm.append_slots(seq, num_new_tokens)
    seq.num_computed_tokens += num_new_tokens
    bm.mark_computed(seq)


def run_prompt(bm: BlockManager, token_ids: list[int], seq_id: str | None = None) -> Sequence:
    seq = make_seq(seq_id, token_ids=token_ids)
    admit(bm, seq)
    compute(bm, seq)
    return seq


def test_fresh_sequence_gets_blocks_on_demand() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    seq = make_seq(prompt_len=10)
    bm.allocate(seq)
    assert seq.block_table == [] and seq.num_computed_tokens == 0
    assert bm.can_append(seq, 10)
    bm.append_slots(seq, 6)
    assert len(seq.block_table) == 2
    seq.num_computed_tokens = 6
    bm.append_slots(seq, 2)  # positions 6, 7 still fit in block 1
    assert len(seq.block_table) == 2
    bm.append_slots(seq, 3)
    assert len(seq.block_table) == 3
    assert bm.num_free_blocks == 5
    assert bm.usage == pytest.approx(3 / 8)
    bm.check_integrity([seq])


def test_can_append_refuses_when_blocks_run_out() -> None:
    bm = BlockManager(num_blocks=2, block_size=4)
    seq = make_seq(prompt_len=12)
    bm.allocate(seq)
    assert bm.can_append(seq, 8)
    assert not bm.can_append(seq, 9)
    with pytest.raises(AssertionError, match="needs 3 blocks"):
        bm.append_slots(seq, 9)


def test_prefix_hit_skips_shared_full_blocks_and_counts_them() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    first = run_prompt(bm, list(range(10)))
    second = make_seq(token_ids=[*range(8), 77, 78, 79])
    bm.allocate(second)
    assert second.block_table == first.block_table[:2]
    assert second.num_computed_tokens == 8
    assert second.num_cached_tokens == 8
    assert [bm.blocks[i].ref_count for i in first.block_table] == [2, 2, 1]
    assert bm.num_prefix_hit_tokens == 8
    assert bm.num_prefix_queried_tokens == 10 + 11
    compute(bm, second)
    assert second.block_table[2] not in first.block_table  # new tokens go to its own block
    bm.check_integrity([first, second])


def test_hit_never_covers_the_last_token() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    first = run_prompt(bm, list(range(9)))
    same_8 = make_seq(token_ids=list(range(8)))
    assert bm.match_prefix(same_8).num_tokens == 4  # block 1 would leave nothing to compute
    same_9 = make_seq(token_ids=list(range(9)))
    assert bm.match_prefix(same_9).num_tokens == 8
    bm.check_integrity([first])


def test_partial_blocks_are_not_cached() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    first = run_prompt(bm, list(range(7)))
    assert bm.num_cached_blocks == 1
    assert bm.match_prefix(make_seq(token_ids=[*range(7), 5, 5])).num_tokens == 4
    bm.check_integrity([first])


def test_match_is_read_only() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    first = run_prompt(bm, list(range(9)))
    bm.free(first)
    before = (bm.num_free_blocks, bm.num_prefix_hit_tokens, bm.num_prefix_queried_tokens)
    assert bm.match_prefix(make_seq(token_ids=list(range(9)))).num_tokens == 8
    assert (bm.num_free_blocks, bm.num_prefix_hit_tokens, bm.num_prefix_queried_tokens) == before


def test_freed_cached_blocks_are_revived() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    first = run_prompt(bm, list(range(9)))
    cached = first.block_table[:2]
    bm.free(first)
    assert first.block_table == []
    assert bm.num_free_blocks == 4  # evictable cached blocks count as free
    again = make_seq(token_ids=list(range(9)))
    bm.allocate(again)
    assert again.block_table == cached
    assert bm.num_free_blocks == 2
    assert [bm.blocks[i].ref_count for i in cached] == [1, 1]
    bm.check_integrity([again])


def test_can_allocate_counts_revived_and_fresh_blocks() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    first = run_prompt(bm, list(range(9)))  # 2 cached blocks + 1 partial
    bm.free(first)
    other = make_seq(prompt_len=1)
    bm.allocate(other)
    bm.append_slots(other, 1)  # takes the partial block, which is evicted first
    seq = make_seq(token_ids=[*range(8), 7, 7, 7, 7, 7])
    match = bm.match_prefix(seq)
    assert match.num_tokens == 8
    # 2 revived + 2 fresh for 5 tokens > 3 free, but 2 revived + 1 fresh for 4 tokens fits.
    assert bm.num_blocks_to_allocate(seq, 5, match) == 4
    assert not bm.can_allocate(seq, 5, match)
    assert bm.can_allocate(seq, 4, match)
    bm.allocate(seq, match)
    bm.append_slots(seq, 4)
    assert bm.num_free_blocks == 0
    bm.check_integrity([other, seq])


def test_stale_match_is_refused() -> None:
    bm = BlockManager(num_blocks=2, block_size=2)
    first = run_prompt(bm, [1, 2, 3])
    bm.free(first)
    seq = make_seq(token_ids=[1, 2, 3])
    match = bm.match_prefix(seq)
    assert match.num_tokens == 2
    hog = make_seq(prompt_len=4)
    bm.allocate(hog)
    bm.append_slots(hog, 4)  # evicts the cached block
    bm.free(hog)
    with pytest.raises(AssertionError, match="stale"):
        bm.allocate(seq, match)


def test_lru_eviction_order() -> None:
    bm = BlockManager(num_blocks=5, block_size=2)
    a = run_prompt(bm, [1, 2, 3, 4])
    bm.free(a)
    b = run_prompt(bm, [5, 6, 7, 8])
    bm.free(b)
    reader = make_seq(token_ids=[1, 2, 9])
    bm.allocate(reader)  # revives a's head: now the most recently used block
    assert reader.num_cached_tokens == 2
    bm.free(reader)

    def hits() -> tuple[int, int]:
        return (
            len(bm.match_prefix(make_seq(token_ids=[1, 2, 3, 4, 0])).block_ids),
            len(bm.match_prefix(make_seq(token_ids=[5, 6, 7, 8, 0])).block_ids),
        )

    assert hits() == (2, 2)
    taker = make_seq(prompt_len=10)
    bm.allocate(taker)
    expected = [(2, 2), (1, 2), (1, 1), (1, 0), (0, 0)]  # never-used, a tail, b tail, b head, a head
    for i, want in enumerate(expected):
        taker.num_computed_tokens = 2 * i
        bm.append_slots(taker, 2)  # exactly one fresh block
        assert hits() == want, f"after {i + 1} fresh blocks"
        bm.check_integrity([taker])


def test_blocks_without_cache_value_are_reused_first() -> None:
    bm = BlockManager(num_blocks=3, block_size=2)
    a = run_prompt(bm, [1, 2, 3, 4, 0])  # 2 cached blocks + a partial tail
    partial_tail = a.block_table[2]
    bm.free(a)
    taker = make_seq(prompt_len=2)
    bm.allocate(taker)
    bm.append_slots(taker, 2)
    assert taker.block_table == [partial_tail]
    assert len(bm.match_prefix(make_seq(token_ids=[1, 2, 3, 4, 0])).block_ids) == 2
    bm.check_integrity([taker])


def test_shared_blocks_are_reference_counted() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a = run_prompt(bm, list(range(9)), "a")
    b = make_seq("b", token_ids=[*range(8), 42])
    bm.allocate(b)
    compute(bm, b)
    shared = a.block_table[:2]
    assert b.block_table[:2] == shared
    assert [bm.blocks[i].ref_count for i in shared] == [2, 2]
    bm.check_integrity([a, b])
    bm.free(a)
    assert [bm.blocks[i].ref_count for i in shared] == [1, 1]
    assert bm.num_free_blocks == 8 - 3  # a's own tail came back, the shared ones did not
    bm.check_integrity([b])
    assert bm.num_blocks_freed_by([b]) == 3
    assert bm.num_blocks_freed_by([b], keep=shared) == 1
    bm.free(b)
    assert bm.num_free_blocks == 8
    bm.check_integrity([])


def test_blocks_freed_by_counts_only_exclusively_held_blocks() -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a = run_prompt(bm, list(range(9)), "a")
    b = make_seq("b", token_ids=[*range(8), 42])
    bm.allocate(b)
    compute(bm, b)
    assert bm.num_blocks_freed_by([a]) == 1
    assert bm.num_blocks_freed_by([a, b]) == 4


def test_hash_collision_is_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix_cache, "hash_block_tokens", lambda parent, tokens: 0)
    bm = BlockManager(num_blocks=8, block_size=4)
    a = run_prompt(bm, [1, 2, 3, 4, 5, 6, 7, 8, 9], "a")
    # Every block hashes to 0; the cache holds a's second block [5..8] under that key.
    b = make_seq("b", token_ids=[5, 6, 7, 8, 1, 2, 3, 4, 9])
    bm.allocate(b)
    assert b.num_computed_tokens == 0, "same tokens but another prefix must not be reused"
    c = make_seq("c", token_ids=[1, 2, 3, 4, 0])
    bm.allocate(c)
    assert c.num_computed_tokens == 0  # a false miss is fine, a wrong hit is not
    bm.check_integrity([a, b, c])


def test_chained_hash_collision_with_equal_tokens_is_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hash that forgets the parent: [5..8] after [1..4] collides with [5..8] after [9..9].
    monkeypatch.setattr(prefix_cache, "hash_block_tokens", lambda parent, tokens: hash(tokens))
    bm = BlockManager(num_blocks=12, block_size=4)
    a = run_prompt(bm, [1, 2, 3, 4, 5, 6, 7, 8, 0], "a")
    c = run_prompt(bm, [9, 9, 9, 9, 5, 6, 7, 8, 0], "c")
    e = make_seq("e", token_ids=[1, 2, 3, 4, 5, 6, 7, 8, 2])
    bm.allocate(e)
    assert e.block_table[:1] == a.block_table[:1]
    assert c.block_table[1] not in e.block_table, "K/V computed after [9, 9, 9, 9] reused after [1..4]"
    assert e.num_computed_tokens == 4
    bm.check_integrity([a, c, e])


_HASH_CHAIN = """
from workers.engine.prefix_cache import hash_block_tokens
first = hash_block_tokens(None, (1, 2, 3, 4))
print(first, hash_block_tokens(first, (5, 6, 7, 8)))
"""


def test_block_hashes_agree_across_processes() -> None:
    # Cache-aware routing compares hashes computed in other processes: each run below is a
    # fresh interpreter (its own hash(None) and string salt), and all must agree.
    runs = {subprocess.run([sys.executable, "-c", _HASH_CHAIN], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("random", "0", "1")}
    first = prefix_cache.hash_block_tokens(None, (1, 2, 3, 4))
    assert runs == {f"{first} {prefix_cache.hash_block_tokens(first, (5, 6, 7, 8))}\n"}
    # Pinned: a change of the hash function is a change of what workers and routers share.
    assert first == 0xd2e09b25a4e6a3eb


def test_block_hash_depends_on_parent_and_every_token() -> None:
    h = prefix_cache.hash_block_tokens
    base = h(None, (1, 2, 3, 4))
    assert len({base, h(0, (1, 2, 3, 4)), h(None, (1, 2, 3, 5)), h(None, (2, 1, 3, 4)), h(base, (1, 2, 3, 4))}) == 5
    assert 0 <= base < 2**64


def test_prefix_caching_disabled() -> None:
    bm = BlockManager(num_blocks=8, block_size=4, enable_prefix_caching=False)
    a = run_prompt(bm, list(range(9)))
    b = make_seq(token_ids=list(range(9)))
    bm.allocate(b)
    assert b.num_computed_tokens == 0 and b.block_table == []
    assert bm.num_cached_blocks == 0
    bm.check_integrity([a, b])


def test_free_twice_is_caught() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    a = run_prompt(bm, list(range(5)))
    table = list(a.block_table)
    bm.free(a)
    a.block_table = table
    with pytest.raises(AssertionError, match="freed twice"):
        bm.free(a)


@pytest.mark.parametrize("corruption", ["refcount", "duplicate", "forgotten_seq", "foreign_tokens"])
def test_check_integrity_detects_corruption(corruption: str) -> None:
    bm = BlockManager(num_blocks=8, block_size=4)
    a = run_prompt(bm, list(range(9)), "a")
    b = make_seq("b", token_ids=[*range(8), 1])
    bm.allocate(b)
    compute(bm, b)
    live = [a, b]
    if corruption == "refcount":
        bm.blocks[a.block_table[2]].ref_count += 1
    elif corruption == "duplicate":
        b.block_table.append(b.block_table[0])
    elif corruption == "forgotten_seq":
        live = [a]
    else:
        a.token_ids[1] = 99  # a's first block now claims tokens a does not have
    with pytest.raises(AssertionError):
        bm.check_integrity(live)
