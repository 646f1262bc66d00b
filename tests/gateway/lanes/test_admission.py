"""Admission at arrival (queue depth, predicted wait) and expiry while queued."""

import pytest

from gateway.errors import APIError
from gateway.job import LaneLoad, WorkerLoad
from gateway.lanes_runtime.admission import BUDGET, Backlog, check_admission
from tests.gateway.lanes.factories import make_policy, running

pytestmark = pytest.mark.anyio


def refusal_of(task) -> APIError:
    assert task.done(), "the job should have been refused by now"
    exc = task.exception()
    assert isinstance(exc, APIError), f"expected an APIError, got {exc!r}"
    return exc


async def test_a_full_queue_refuses_at_once_with_429_and_reason():
    async with running(is_healthy=False) as rig:  # interactive: max_queue_depth 8
        _, queued = await rig.submit_many("inline", 8)
        assert not any(t.done() for t in queued), "8 fit: the rate is unknown, so nothing predicts a wait"

        err = refusal_of(await rig.submit(rig.job("inline")))
        assert err.status == 429 and err.code == "queue-full"
        assert err.headers["x-laneway-reject-reason"] == "queue-full"
        assert int(err.headers["Retry-After"]) >= 1
        stats = rig.stats("interactive")
        assert (stats.queue_depth, stats.num_refused) == (8, {"queue-full": 1})


async def _learn_half_a_second_per_job(rig) -> None:
    """Four chat jobs wait 2 s for a worker, then leave together: 0.5 s per job."""
    rig.pool.is_healthy = False
    _, tasks = await rig.submit_many("chat", 4)
    await rig.until(ms=2000)
    rig.pool.set_healthy(True)
    await rig.clock.advance(0)
    assert all(t.done() for t in tasks)
    assert rig.stats("streaming").seconds_per_job == pytest.approx(0.5)
    rig.pool.is_healthy = False


async def test_a_predicted_wait_over_the_endpoint_budget_is_refused_with_that_wait():
    async with running() as rig:  # chat: slo.ttft_p95_ms 2000 in lane streaming (max wait 5000 ms)
        await _learn_half_a_second_per_job(rig)
        _, admitted = await rig.submit_many("chat", 5)  # the 5th sees 4 ahead: 2.0 s, just within
        assert not any(t.done() for t in admitted)

        err = refusal_of(await rig.submit(rig.job("chat")))  # 5 ahead: 2.5 s > 2.0 s
        assert err.status == 429 and err.code == "budget"
        assert err.headers["x-laneway-reject-reason"] == "budget"
        assert err.headers["Retry-After"] == "3", "Retry-After is the predicted wait, rounded up"
        assert "slo.ttft_p95_ms" in err.message and "2500 ms" in err.message
        assert rig.stats("streaming").num_refused == {"budget": 1}


async def test_a_predicted_wait_over_the_clients_own_deadline_is_refused():
    async with running() as rig:
        await _learn_half_a_second_per_job(rig)
        await rig.submit_many("chat", 2)  # 1.0 s of queue ahead
        err = refusal_of(await rig.submit(rig.job("chat", deadline_ms=800)))
        assert err.code == "budget" and "deadline" in err.message
        patient = await rig.submit(rig.job("chat", deadline_ms=1200))
        assert not patient.done()


async def test_a_job_whose_deadline_passes_while_queued_is_refused_not_dropped():
    async with running(is_healthy=False) as rig:  # interactive: max_queue_wait_ms 1000
        task = await rig.submit(rig.job("inline"))
        await rig.until(ms=999)
        assert not task.done(), "no healthy worker: the job waits"
        await rig.until(ms=1000)
        err = refusal_of(task)
        assert err.status == 429 and err.code == "deadline"
        assert err.headers["x-laneway-reject-reason"] == "deadline"
        stats = rig.stats("interactive")
        assert (stats.queue_depth, stats.num_dispatched, stats.num_refused) == (0, 0, {"deadline": 1})
        rig.pool.set_healthy(True)
        await rig.clock.advance(0)
        assert rig.pool.picks == [], "an expired job is never dispatched"


async def test_queued_jobs_leave_as_soon_as_a_worker_becomes_healthy():
    async with running(is_healthy=False) as rig:
        job = rig.job("inline")
        task = await rig.submit(job)
        await rig.until(ms=300)
        assert not task.done()
        rig.pool.set_healthy(True)  # sets pool.changed, as a refresh would
        await rig.clock.advance(0)
        assert task.done() and job.dispatched_at == rig.t(300)


async def _dispatch_now(rig, endpoint: str, n: int) -> list:
    """n jobs that leave their lane at once (window 0): they wait inside a worker, unseen by the lane queue."""
    jobs, tasks = await rig.submit_many(endpoint, n)
    await rig.clock.advance(0)
    assert all(t.done() and t.exception() is None for t in tasks), "a window of 0 dispatches at once"
    return jobs


async def test_a_backlog_inside_the_workers_is_refused_even_though_the_lane_queue_is_empty():
    # The lane dispatches at once, so under overload its own queue stays empty and the
    # backlog forms in the workers. Jobs that start one per 0.5 s teach admission that.
    policy = make_policy(lanes={"streaming": {"batch_window_ms": 0}})
    async with running(policy) as rig:  # chat: slo.ttft_p95_ms 2000
        jobs = await _dispatch_now(rig, "chat", 2)
        for i, job in enumerate(jobs, start=1):
            await rig.until(ms=500 * i)
            rig.dispatcher.observe(job, ttft_s=0.5 * i)
        stats = rig.stats("streaming")
        assert stats.seconds_per_first_token == pytest.approx(0.5)
        assert (stats.queue_depth, stats.num_unstarted) == (0, 0)

        await _dispatch_now(rig, "chat", 4)  # 0..3 unstarted ahead: within budget
        await _dispatch_now(rig, "chat", 1)  # ... and so is this one: it saw 4 ahead
        err = refusal_of(await rig.submit(rig.job("chat")))  # 5 ahead: 2.5 s > 2.0 s
        assert err.status == 429 and err.code == "budget"
        assert "5 requests ahead" in err.message and "2500 ms" in err.message and "slo.ttft_p95_ms" in err.message
        assert rig.stats("streaming").num_unstarted == 5, "the refused job never reached a worker"


async def test_a_lone_start_is_latency_not_a_rate_so_a_burst_after_it_is_admitted():
    # One request alone took 0.5 s to start. Read as a drain rate, 4 jobs ahead would predict
    # 2.0 s and the 6th of a burst (5 ahead: 2.5 s) would be refused, though a worker
    # prefills a burst's prompts together.
    policy = make_policy(lanes={"streaming": {"batch_window_ms": 0}})
    async with running(policy) as rig:  # chat: slo.ttft_p95_ms 2000
        (lone,) = await _dispatch_now(rig, "chat", 1)
        await rig.until(ms=500)
        rig.dispatcher.observe(lone, ttft_s=0.5)
        assert rig.stats("streaming").seconds_per_first_token is None, "one request's latency is no rate"
        burst = await _dispatch_now(rig, "chat", 8)  # none refused (_dispatch_now checks)
        assert rig.stats("streaming").num_unstarted == 8

        # The burst starts in two waves: now the rate is measured with jobs queued behind each other.
        await rig.until(ms=600)
        for job in burst[:4]:
            rig.dispatcher.observe(job, ttft_s=0.1)
        await rig.until(ms=700)
        for job in burst[4:]:
            rig.dispatcher.observe(job, ttft_s=0.2)
        rate = rig.stats("streaming").seconds_per_first_token
        assert rate is not None and rate < 0.1, f"8 starts in 0.2 s: a rate well under the lone 0.5 s, got {rate}"


async def test_jobs_that_start_or_fail_stop_counting_as_backlog():
    policy = make_policy(lanes={"streaming": {"batch_window_ms": 0}})
    async with running(policy) as rig:
        first, second = await _dispatch_now(rig, "chat", 2)
        assert rig.stats("streaming").num_unstarted == 2
        await rig.until(ms=300)
        rig.dispatcher.observe(first, ttft_s=0.3)
        assert rig.stats("streaming").num_unstarted == 1
        rig.dispatcher.release(second, completed=False)  # failed before its first token
        rig.dispatcher.release(first, completed=True)
        stats = rig.stats("streaming")
        assert (stats.num_unstarted, stats.num_in_flight) == (0, 0)
        assert stats.seconds_per_first_token == pytest.approx(0.3)


# -- the workers' own prediction (check_admission is pure: no rig needed) --------------------

def _bulk_lane(wait_ms: float) -> LaneLoad:
    return LaneLoad("bulk", priority=2, preemptible=True, num_running=30, num_waiting=32,
                    num_queued_prefill_tokens=19_200, predicted_wait_ms=wait_ms)


def _admit(endpoint: str, *loads: WorkerLoad, num_queued: int = 0, seconds_per_job: float | None = None):
    policy = make_policy()
    lane_name = policy.endpoints[endpoint].lane
    return check_admission(lane_name=lane_name, lane=policy.lanes[lane_name], endpoint_name=endpoint,
                           endpoint=policy.endpoints[endpoint], deadline=None, now=0.0,
                           backlog=Backlog(num_queued=num_queued, seconds_per_job=seconds_per_job,
                                           worker_loads=loads))


def test_a_bulk_backlog_on_the_worker_does_not_refuse_an_interactive_request():
    # 30 s of bulk prefill ahead on the only worker: bulk is preemptible and less urgent.
    worker = WorkerLoad(num_running=30, num_waiting=32, max_num_seqs=64, lanes=(_bulk_lane(30_000),))
    assert _admit("inline", worker) is None
    assert _admit("chat", worker) is None


def test_an_interactive_backlog_on_the_worker_refuses_an_interactive_request():
    # inline: slo.ttft_p95_ms 300. The worker predicts 450 ms of interactive prefill ahead.
    interactive = LaneLoad("interactive", priority=0, preemptible=False, num_waiting=9, predicted_wait_ms=450)
    worker = WorkerLoad(num_waiting=9, max_num_seqs=64, lanes=(interactive, _bulk_lane(30_000)))
    refusal = _admit("inline", worker)
    assert refusal is not None and refusal.reason == BUDGET
    assert "450 ms" in refusal.message and "slo.ttft_p95_ms" in refusal.message
    assert refusal.retry_after_s == pytest.approx(0.45)


def test_a_streaming_request_counts_more_urgent_latency_lanes_but_not_bulk():
    # chat (streaming, priority 1): ttft_p95_ms 2000. Its own lane is idle on this worker.
    interactive = LaneLoad("interactive", priority=0, preemptible=False, predicted_wait_ms=2500)
    assert _admit("chat", WorkerLoad(lanes=(interactive,))) is not None, "interactive work goes first"
    assert _admit("chat", WorkerLoad(lanes=(_bulk_lane(60_000),))) is None, "bulk gives way"


def test_the_least_busy_worker_decides_and_the_lane_queue_adds_to_it():
    busy = WorkerLoad(lanes=(LaneLoad("interactive", 0, False, predicted_wait_ms=5000),))
    idle = WorkerLoad(lanes=(LaneLoad("interactive", 0, False, predicted_wait_ms=200),))
    assert _admit("inline", busy, idle) is None, "it would go to the worker with 200 ms ahead"
    # 200 ms on the worker plus 2 queued jobs leaving 60 ms apart: 320 ms > 300 ms.
    refusal = _admit("inline", busy, idle, num_queued=2, seconds_per_job=0.06)
    assert refusal is not None and "320 ms" in refusal.message


def test_a_worker_without_a_cost_model_predicts_nothing():
    # Token mode (or an older worker): every wait reads 0, and the other predictions decide.
    token_mode = WorkerLoad(num_running=64, max_num_seqs=64, lanes=(LaneLoad("interactive", 0, False),))
    assert _admit("inline", token_mode, WorkerLoad()) is None


async def test_the_dispatcher_reads_the_healthy_workers_reports_and_keeps_its_prediction():
    async with running() as rig:
        rig.pool.reports = [WorkerLoad(lanes=(_bulk_lane(30_000),
                                              LaneLoad("interactive", 0, False, predicted_wait_ms=120)))]
        inline = rig.job("inline")
        task = await rig.submit(inline)
        await rig.until(ms=10)
        assert task.done() and task.exception() is None
        assert inline.predicted_wait_s == pytest.approx(0.120), "the worker's 120 ms, not bulk's 30 s"

        rig.pool.reports = [WorkerLoad(lanes=(LaneLoad("interactive", 0, False, predicted_wait_ms=400),))]
        err = refusal_of(await rig.submit(rig.job("inline")))
        assert err.code == "budget" and "400 ms" in err.message
        assert rig.stats("interactive").num_refused == {"budget": 1}
@pytest.mark.parametrize("endpoint", ["inline", "nightly"])  # interactive, and bulk with its hour-long wait
async def test_with_no_healthy_worker_admission_refuses_at_once_with_503_and_retry_after(endpoint):
    async with running(has_workers=False) as rig:
        lane = rig.job(endpoint).lane.name
        err = refusal_of(await rig.submit(rig.job(endpoint)))
        assert err.status == 503 and int(err.headers["Retry-After"]) >= 1
        assert "no healthy worker" in err.message
        assert rig.pool.picks == [] and rig.stats(lane).queue_depth == 0
        rig.pool.has_workers = True  # a worker is back: the next request is admitted and leaves
        admitted = await rig.submit(rig.job(endpoint))
        await rig.until(ms=100)  # both lanes' batch windows have closed
        assert admitted.done() and admitted.exception() is None and admitted.result() in rig.pool.workers
