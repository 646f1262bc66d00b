"""The drain rate behind admission: busy time per dispatched job."""

import pytest

from gateway.lanes_runtime.drain_rate import DrainRate


def test_unknown_until_a_batch_has_left():
    assert DrainRate().seconds_per_job is None


def test_idle_time_between_bursts_does_not_count():
    rate = DrainRate()
    rate.record(num_jobs=2, oldest_enqueued_at=10.0, now=10.1)  # a 100 ms window, 2 jobs
    rate.record(num_jobs=2, oldest_enqueued_at=60.0, now=60.1)  # 50 s idle, then the same again
    assert rate.seconds_per_job == pytest.approx(0.05)


def test_batches_leaving_together_after_an_outage_share_its_wait():
    rate = DrainRate()
    for size in (8, 8, 4):  # 20 jobs waited 2 s for a worker, then left in three batches at once
        rate.record(num_jobs=size, oldest_enqueued_at=0.0, now=2.0)
    assert rate.seconds_per_job == pytest.approx(0.1), "not 0.25 (the first batch alone), nor ~0 (the rest)"


def test_a_backlog_counts_from_the_previous_dispatch():
    rate = DrainRate(decay=0.0)  # only the newest batch
    rate.record(num_jobs=1, oldest_enqueued_at=0.0, now=1.0)
    rate.record(num_jobs=4, oldest_enqueued_at=0.5, now=3.0)  # waited since 0.5, but the lane was busy until 1.0
    assert rate.seconds_per_job == pytest.approx(0.5)
