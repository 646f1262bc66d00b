"""The dispatcher's batches against a slow reference: same members, same departure times."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gateway.lanes.factories import make_policy, running

WINDOW_MS = 7.5  # arrivals land on whole ms, so no arrival ties with a window's end
MAX_BATCH = 3


def reference_batches(arrivals_ms: list[int]) -> list[tuple[list[int], float]]:
    """(member indexes, departure ms): a batch leaves when full or WINDOW_MS after its first job."""
    batches, i = [], 0
    while i < len(arrivals_ms):
        end = arrivals_ms[i] + WINDOW_MS
        members = [i]
        while i + len(members) < len(arrivals_ms) and len(members) < MAX_BATCH \
                and arrivals_ms[i + len(members)] < end:
            members.append(i + len(members))
        leaves = arrivals_ms[members[-1]] if len(members) == MAX_BATCH else end
        batches.append((members, leaves))
        i += len(members)
    return batches


async def run_dispatcher(arrivals_ms: list[int]):
    policy = make_policy(lanes={"interactive": {"batch_window_ms": WINDOW_MS, "max_batch_size": MAX_BATCH}})
    async with running(policy) as rig:
        jobs = []
        for at in arrivals_ms:
            await rig.until(ms=at)
            job = rig.job("inline")
            await rig.submit(job)
            jobs.append(job)
        await rig.until(ms=arrivals_ms[-1] + 2 * WINDOW_MS)
        return rig, jobs


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12).map(sorted))
def test_batches_match_the_reference(arrivals_ms):
    rig, jobs = asyncio.run(run_dispatcher(arrivals_ms))
    got = {}
    for i, job in enumerate(jobs):
        got.setdefault(job.batch_id, []).append(i)
    assert sorted(got.values()) == [members for members, _ in reference_batches(arrivals_ms)]
    for members, leaves_ms in reference_batches(arrivals_ms):
        for i in members:
            assert jobs[i].batch_size == len(members)
            assert jobs[i].dispatched_at == pytest.approx(rig.t(leaves_ms), abs=1e-6)
    assert len(rig.pool.picks) == len(got), "one pick per batch"
