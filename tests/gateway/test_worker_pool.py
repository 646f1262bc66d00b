"""WorkerPool's view of capacity: free slots, and step-time headroom for bulk."""

from __future__ import annotations

from gateway.job import WorkerLoad
from tests.gateway.lanes.fake_pool import FakeWorker, pool_of, timed


def test_bulk_headroom_is_step_time_not_free_slots():
    pool = pool_of(FakeWorker("w0", timed(num_bulk_slots=3)), FakeWorker("w1", timed(num_bulk_slots=5)))
    # Slots say 28 free on each, but their steps have time for 3 + 5 more bulk sequences.
    assert pool.backfill_capacity() == 8


def test_calls_opened_since_the_report_use_up_headroom():
    worker = FakeWorker("w0", timed(num_bulk_slots=5, num_running=4), num_inflight=7)  # 3 the report missed
    assert pool_of(worker).backfill_capacity() == 2
    worker.num_inflight = 20
    assert pool_of(worker).backfill_capacity() == 0, "never below zero"


def test_a_worker_without_a_step_budget_offers_its_free_slots():
    # Token mode, an older worker (no lanes, no headroom in its report), or nothing to protect.
    older = FakeWorker("w0", WorkerLoad(num_running=10, num_waiting=2, max_num_seqs=32), num_inflight=14)
    assert pool_of(older).backfill_capacity() == 32 - 14
    mixed = pool_of(older, FakeWorker("w1", timed(num_bulk_slots=1)))
    assert mixed.backfill_capacity() == 18 + 1


def test_workers_out_of_rotation_offer_nothing():
    down = FakeWorker("w0", timed(num_bulk_slots=9), is_healthy=False)
    pool = pool_of(down, FakeWorker("w1", timed(num_bulk_slots=2)))
    assert pool.backfill_capacity() == 2
    assert pool.loads() == [pool.workers[1].load]
