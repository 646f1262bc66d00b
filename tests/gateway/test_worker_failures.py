"""The gateway tells a bad request from a dead worker, and a stream outlives its worker, on
either wire to the workers.

Real gRPC workers in-process (tests/gateway/fake_workers.py) behind the real WorkerPool,
WorkerClient and GenerationService: a request's own failure goes back to its client and
leaves the worker in rotation; a worker that is down loses its jobs to the others, and a
stream that was mid-way resumes on another worker from the tokens already sent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest

from gateway import service as service_module
from gateway.errors import APIError
from gateway.job import Chunk, Job, LaneTicket, Sampling
from gateway.service import GenerationService, ImmediateDispatcher, StreamBroken
from gateway.worker_pool import WorkerPool
from tests.gateway import fake_workers
from tests.gateway.fake_workers import RunningCueWorker, expected_text, start_cue_worker

pytestmark = pytest.mark.anyio
NUM_TOKENS = 12


@pytest.fixture(autouse=True, params=["session", "per-stream"])
def wire(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case on both wires: streams on one Session call, and a worker without Session
    (the gateway falls back to a Generate call per stream)."""
    monkeypatch.setattr(fake_workers, "SESSIONS", request.param == "session")
    return str(request.param)


def _job(prompt: str, max_tokens: int = NUM_TOKENS) -> Job:
    return Job(endpoint="chat", tenant="anonymous", kind="completion", prompt=prompt,
               sampling=Sampling(max_tokens=max_tokens, temperature=0.0), lane=LaneTicket("streaming", 1, False),
               stream=True, prompt_tokens_estimate=len(prompt))


@contextlib.asynccontextmanager
async def _service(*workers: RunningCueWorker) -> AsyncIterator[tuple[GenerationService, WorkerPool]]:
    pool = WorkerPool([w.address for w in workers], refresh_interval_s=3600)  # no refresh: the test's view
    await pool.start()
    try:
        yield GenerationService(pool, ImmediateDispatcher(pool)), pool
    finally:
        await pool.close()
        for w in workers:
            await w.server.stop(None)


async def _collect(service: GenerationService, job: Job) -> list[Chunk]:
    return [chunk async for chunk in service.stream(job)]


def _calls(*workers: RunningCueWorker) -> int:
    return sum(len(w.servicer.calls) for w in workers)


async def test_internal_from_a_worker_that_stays_healthy_goes_to_the_client_and_the_worker_stays() -> None:
    a = await start_cue_worker("a", internal_for={"bad"})
    b = await start_cue_worker("b", internal_for={"bad"})
    async with _service(a, b) as (service, pool):
        for _ in range(5):  # once a pool-emptying request: each try took a worker out of rotation
            with pytest.raises(APIError) as info:
                await _collect(service, _job("bad"))
            assert info.value.status == 502 and "this request failed here" in info.value.message
        assert _calls(a, b) == 5, "a request's own failure is not retried on other workers"
        assert len(pool.healthy()) == 2
        good = await _collect(service, _job("good"))
        assert "".join(c.text for c in good) == expected_text("good", NUM_TOKENS)


async def test_invalid_argument_goes_to_the_client_as_400_without_a_retry() -> None:
    a = await start_cue_worker("a", invalid_for={"bad"})
    b = await start_cue_worker("b", invalid_for={"bad"})
    async with _service(a, b) as (service, pool):
        with pytest.raises(APIError) as info:
            await _collect(service, _job("bad"))
        assert info.value.status == 400 and _calls(a, b) == 1 and len(pool.healthy()) == 2


async def test_internal_from_a_worker_whose_engine_died_moves_the_job_to_another_worker() -> None:
    a = await start_cue_worker("a", engine_fails_for={"p"})
    b = await start_cue_worker("b", engine_fails_for={"p"})
    async with _service(a, b) as (service, pool):
        first = a if pool.pick(_job("p")).address == a.address else b
        other = b if first is a else a
        other.servicer.engine_fails_for.clear()
        chunks = await _collect(service, _job("p"))
        assert "".join(c.text for c in chunks) == expected_text("p", NUM_TOKENS)
        assert [w.address for w in pool.healthy()] == [other.address]


@pytest.mark.parametrize("die_after", [1, 5, NUM_TOKENS - 1])
async def test_a_stream_whose_worker_dies_mid_way_resumes_on_another_without_a_seam(die_after: int) -> None:
    prompt = "resume me"
    a = await start_cue_worker("a", die_after=die_after)
    b = await start_cue_worker("b", die_after=die_after)
    async with _service(a, b) as (service, pool):
        first = a if pool.pick(_job(prompt)).address == a.address else b
        other = b if first is a else a
        other.servicer.die_after = None
        chunks = await _collect(service, _job(prompt))

    assert "".join(c.text for c in chunks) == expected_text(prompt, NUM_TOKENS)
    assert sum(len(c.token_ids) for c in chunks) == NUM_TOKENS
    assert chunks[-1].finish_reason == "length" and chunks[-1].completion_tokens == NUM_TOKENS
    sent = [t for c in chunks[:die_after] for t in c.token_ids]
    assert other.servicer.calls == [(prompt, sent)], "the second worker continues after what was sent"
    assert first.servicer.calls == [(prompt, [])]


async def test_a_stream_with_no_worker_to_resume_it_ends_with_stream_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "FAILOVER_WAIT_S", 0.3)
    a = await start_cue_worker("a", die_after=3)
    async with _service(a) as (service, pool):
        chunks: list[Chunk] = []
        with pytest.raises(StreamBroken, match="no worker could resume the stream") as info:
            async for chunk in service.stream(_job("alone")):
                chunks.append(chunk)
        assert len(chunks) == 3 and pool.healthy() == []
        assert info.value.code == "worker_lost"  # the same request may well succeed later


async def test_a_stream_of_several_choices_is_not_resumed_on_another_worker() -> None:
    a = await start_cue_worker("a", die_after=3)
    b = await start_cue_worker("b")
    job = _job("two choices")
    job = dataclasses.replace(job, sampling=dataclasses.replace(job.sampling, n=2))
    async with _service(a, b) as (service, pool):
        first = a if pool.pick(job).address == a.address else b
        other = b if first is a else a
        first.servicer.die_after = 3
        other.servicer.die_after = None
        with pytest.raises(StreamBroken, match="a stream of 2 choices cannot resume"):
            await _collect(service, job)
        assert other.servicer.calls == [], "resume tokens are one choice's output: no resume"


async def test_a_resumed_stream_tries_at_most_max_attempts_workers() -> None:
    workers = [await start_cue_worker(f"w{i}", die_after=2) for i in range(service_module.MAX_ATTEMPTS + 1)]
    async with _service(*workers) as (service, pool):
        chunks: list[Chunk] = []
        with pytest.raises(StreamBroken):
            async for chunk in service.stream(_job("unlucky")):
                chunks.append(chunk)
    assert _calls(*workers) == service_module.MAX_ATTEMPTS
    assert "".join(c.text for c in chunks) == expected_text("unlucky", 2 * service_module.MAX_ATTEMPTS)


async def test_a_stream_resumed_once_after_an_engine_failure_ends_if_a_second_engine_fails() -> None:
    workers = [await start_cue_worker(f"w{i}", engine_fails_after=2) for i in range(3)]
    async with _service(*workers) as (service, pool):
        chunks: list[Chunk] = []
        with pytest.raises(StreamBroken, match="the engines of 2 workers failed") as info:
            async for chunk in service.stream(_job("poison mid-way")):
                chunks.append(chunk)
        assert info.value.code == "worker_error"  # the request is the likely cause: retrying is no use
        assert len(chunks) == 4 and _calls(*workers) == 2 and len(pool.healthy()) == 1


async def test_a_request_under_which_two_engines_failed_is_not_moved_to_a_third_worker() -> None:
    workers = [await start_cue_worker(f"w{i}", engine_fails_for={"poison"}) for i in range(3)]
    async with _service(*workers) as (service, pool):
        with pytest.raises(APIError) as info:
            await _collect(service, _job("poison"))
        assert info.value.status == 502 and "the engines of 2 workers failed" in info.value.message
        assert _calls(*workers) == service_module.MAX_ENGINE_FAILURES
        assert len(pool.healthy()) == 1  # the third never saw it, and serves
        assert "".join(c.text for c in await _collect(service, _job("fine"))) == expected_text("fine", NUM_TOKENS)


async def test_concurrent_streams_on_a_worker_share_one_session_call(wire: str) -> None:
    a = await start_cue_worker("a")
    async with _service(a) as (service, pool):
        prompts = [f"p{i}" for i in range(4)]
        results = await asyncio.gather(*(_collect(service, _job(p)) for p in prompts))
        again = await _collect(service, _job("later"))
    for prompt, chunks in zip(prompts, results, strict=True):
        assert "".join(c.text for c in chunks) == expected_text(prompt, NUM_TOKENS)
    assert "".join(c.text for c in again) == expected_text("later", NUM_TOKENS)
    # Without Session, the gateway asked once, then used a Generate call per stream.
    assert a.servicer.wires == (["Session"] if wire == "session" else ["Generate"] * 5)


async def test_a_worker_cut_off_mid_stream_loses_its_streams_to_another_worker() -> None:
    a = await start_cue_worker("a", pause_after=4)
    b = await start_cue_worker("b", pause_after=4)
    async with _service(a, b) as (service, pool):
        first = a if pool.pick(_job("cut")).address == a.address else b
        other = b if first is a else a
        other.servicer.pause_after = None
        chunks: list[Chunk] = []
        async for chunk in service.stream(_job("cut")):
            chunks.append(chunk)
            if len(chunks) == 4:
                await first.server.stop(None)  # the whole connection goes: a session with it
    assert "".join(c.text for c in chunks) == expected_text("cut", NUM_TOKENS)
    sent = [t for c in chunks[:4] for t in c.token_ids]
    assert other.servicer.calls == [("cut", sent)]


async def test_a_stream_the_gateway_leaves_early_is_cancelled_on_the_worker_and_the_rest_go_on() -> None:
    a = await start_cue_worker("a", pause_after=3)
    async with _service(a) as (service, pool):
        stream = service.stream(_job("left"))
        chunks = [await anext(stream) for _ in range(3)]
        await stream.aclose()  # the client went away
        for _ in range(500):
            if a.servicer.cancelled:
                break
            await asyncio.sleep(0.01)
        assert a.servicer.cancelled == ["left"] and len(chunks) == 3
        a.servicer.pause_after = None
        assert "".join(c.text for c in await _collect(service, _job("next"))) == expected_text("next", NUM_TOKENS)


async def test_a_worker_replaced_by_one_without_session_gets_the_job_again_on_a_call_per_stream() -> None:
    a = await start_cue_worker("a", sessions=True)
    b = await start_cue_worker("b", sessions=True)
    async with _service(a, b) as (service, pool):
        first = a if pool.pick(_job("swap")).address == a.address else b
        other = b if first is a else a
        first.servicer.sessions = False  # its Info, read at start, still says it has Session
        chunks = await _collect(service, _job("swap"))
        client = next(w for w in pool.workers if w.address == first.address)
        assert not client.uses_session, "it is asked with a Generate call per stream from now on"
    assert "".join(c.text for c in chunks) == expected_text("swap", NUM_TOKENS)
    assert first.servicer.calls == [] and other.servicer.calls == [("swap", [])]
