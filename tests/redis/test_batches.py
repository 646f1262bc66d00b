"""The Batch API in-process: lifecycle, validation, isolation, shared work, cancel, expiry, takeover."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.redis.batch_client import completion_lines, create, lines_of, request_line, upload, wait_for
from tests.redis.factories import ALPHA, BETA, gateway_app, make_config, make_policy, runner_of
from tests.redis.fake_worker import FAILS_HERE, RunningFake, start_fake_worker
from tests.support.redis_server import TestRedis

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    worker = await start_fake_worker()
    yield worker
    await worker.server.stop(0)


def _answers(*files: list[dict]) -> Counter[str]:
    return Counter(line["custom_id"] for lines in files for line in lines)


async def test_a_batch_runs_every_line_once_on_the_bulk_lane(redis: TestRedis, fake: RunningFake,
                                                             tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path), [fake.address], redis.url)
    async with gateway_app(config) as (client, _):
        file_id = await upload(client, completion_lines(30), BETA)
        created = await create(client, file_id, BETA, metadata={"laneway_endpoint": "chat", "team": "x"})
        assert created["status"] == "validating" and created["object"] == "batch"
        batch = await wait_for(client, created["id"], BETA)
        output = await lines_of(client, batch["output_file_id"], BETA)
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
    assert batch["error_file_id"] is None and batch["errors"] is None
    assert batch["created_at"] <= batch["in_progress_at"] <= batch["finalizing_at"] <= batch["completed_at"]
    assert batch["metadata"] == {"laneway_endpoint": "chat", "team": "x"}
    assert [line["custom_id"] for line in output] == [f"req-{i}" for i in range(30)]  # input order
    for line in output:
        assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
        assert line["id"].startswith("batch_req_")
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"]
        assert response["body"]["choices"][0]["text"] == "AAA"
    assert set(fake.servicer.prompts.values()) == {1} and len(fake.servicer.prompts) == 30
    assert fake.servicer.lanes == {"bulk": 30}, "chat's lane is interactive; batch lines must go to bulk"
    assert fake.servicer.endpoints == {"chat": 30}


async def test_lines_go_to_the_first_bulk_endpoint_by_default(redis: TestRedis, fake: RunningFake,
                                                              tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path), [fake.address], redis.url)
    lines = "\n".join(request_line(f"c{i}", {"messages": [{"role": "user", "content": f"hi {i}"}],
                                             "max_tokens": 2}, url="/v1/chat/completions") for i in range(3))
    async with gateway_app(config) as (client, _):
        batch_id = (await create(client, await upload(client, lines, BETA), BETA,
                                 endpoint="/v1/chat/completions"))["id"]
        batch = await wait_for(client, batch_id, BETA)
        output = await lines_of(client, batch["output_file_id"], BETA)
    assert batch["status"] == "completed"
    assert {line["response"]["body"]["object"] for line in output} == {"chat.completion"}
    assert fake.servicer.endpoints == {"labeling": 3}


async def test_a_bad_file_fails_the_batch_naming_every_bad_line(redis: TestRedis, fake: RunningFake,
                                                                tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path, bulk_max_tokens=64), [fake.address], redis.url)
    content = "\n".join([
        request_line("a", {"prompt": "fine", "max_tokens": 2}),
        '{"custom_id": "b", "method": "POST", "url": ',  # truncated JSON
        request_line("a", {"prompt": "again", "max_tokens": 2}),
        request_line("c", {"messages": [{"role": "user", "content": "hi"}]}, url="/v1/chat/completions"),
        request_line("d", {"prompt": "too long", "max_tokens": 1000}),
        request_line("e", {"prompt": "x", "max_tokens": 2, "stream": True}),
        request_line("f", {"prompt": "fine too", "max_tokens": 2}),
    ])
    async with gateway_app(config) as (client, _):
        batch_id = (await create(client, await upload(client, content, BETA), BETA))["id"]
        batch = await wait_for(client, batch_id, BETA)
    assert batch["status"] == "failed" and batch["failed_at"] and batch["output_file_id"] is None
    errors = {e["line"]: e for e in batch["errors"]["data"]}
    assert {line: e["code"] for line, e in errors.items()} == {
        2: "invalid_json_line", 3: "duplicate_custom_id", 4: "mismatched_url", 5: "invalid_request",
        6: "invalid_request"}
    assert "line 1" in errors[3]["message"] and "1000" in errors[5]["message"]
    assert errors[5]["param"] == "body.max_tokens"
    assert not fake.servicer.prompts, "no line of a failed batch may run"


async def test_tenants_cannot_see_each_others_files_or_batches(redis: TestRedis, fake: RunningFake,
                                                               tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path), [fake.address], redis.url)
    async with gateway_app(config) as (client, _):
        file_id = await upload(client, completion_lines(2), ALPHA)
        batch_id = (await create(client, file_id, ALPHA))["id"]
        for method, path in [("GET", f"/v1/files/{file_id}"), ("GET", f"/v1/files/{file_id}/content"),
                             ("DELETE", f"/v1/files/{file_id}"), ("GET", f"/v1/batches/{batch_id}"),
                             ("POST", f"/v1/batches/{batch_id}/cancel")]:
            r = await client.request(method, path, headers=BETA)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.json()["error"]["type"] == "not_found_error"
        r = await client.post("/v1/batches", headers=BETA, json={"input_file_id": file_id,
                                                                   "endpoint": "/v1/completions",
                                                                   "completion_window": "24h"})
        assert r.status_code == 404, "a batch must not read another tenant's file"
        assert (await client.get("/v1/batches", headers=BETA)).json()["data"] == []
        assert (await client.get("/v1/files", headers=BETA)).json()["data"] == []
        assert (await client.get("/v1/files", headers={})).status_code == 401
        assert (await wait_for(client, batch_id, ALPHA))["status"] == "completed"  # untouched by beta
        assert [b["id"] for b in (await client.get("/v1/batches", headers=ALPHA)).json()["data"]] == [batch_id]
        assert (await client.delete(f"/v1/files/{file_id}", headers=ALPHA)).json()["deleted"] is True
        assert (await client.get(f"/v1/files/{file_id}", headers=ALPHA)).status_code == 404


async def test_two_replicas_share_a_batch_and_run_no_line_twice(redis: TestRedis, tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.004)
    config = make_config(make_policy(tmp_path), [fake.address], redis.url, batch_concurrency=4)
    try:
        async with gateway_app(config) as (a, state_a), gateway_app(config) as (b, state_b):
            batch_id = (await create(a, await upload(a, completion_lines(48, max_tokens=5), BETA), BETA))["id"]
            batch = await wait_for(b, batch_id, BETA)
            output = await lines_of(b, batch["output_file_id"], BETA)
            runs = (runner_of(state_a).num_items_run, runner_of(state_b).num_items_run)
    finally:
        await fake.server.stop(0)
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 48
    assert set(_answers(output).values()) == {1} and len(output) == 48
    assert len(fake.servicer.prompts) == 48 and set(fake.servicer.prompts.values()) == {1}, \
        "a line reached a worker twice"
    assert min(runs) > 0 and sum(runs) == 48, f"both replicas should work the batch: {runs}"


async def test_cancel_answers_every_unrun_line_once(redis: TestRedis, tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.02)
    config = make_config(make_policy(tmp_path), [fake.address], redis.url, batch_concurrency=2)
    try:
        async with gateway_app(config) as (client, _):
            file_id = await upload(client, completion_lines(20, max_tokens=8), BETA)
            batch_id = (await create(client, file_id, BETA))["id"]
            await _wait_completed_at_least(client, batch_id, 2)
            r = await client.post(f"/v1/batches/{batch_id}/cancel", headers=BETA)
            assert r.status_code == 200 and r.json()["status"] in ("cancelling", "cancelled")
            batch = await wait_for(client, batch_id, BETA)
            again = await client.post(f"/v1/batches/{batch_id}/cancel", headers=BETA)
            output = await lines_of(client, batch["output_file_id"], BETA)
            errors = await lines_of(client, batch["error_file_id"], BETA)
            finished_id = (await create(client, file_id, BETA))["id"]
            await wait_for(client, finished_id, BETA)
            late = await client.post(f"/v1/batches/{finished_id}/cancel", headers=BETA)
    finally:
        await fake.server.stop(0)
    assert batch["status"] == "cancelled" and batch["cancelling_at"] and batch["cancelled_at"]
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert late.status_code == 409
    answers = _answers(output, errors)
    assert set(answers) == {f"req-{i}" for i in range(20)} and set(answers.values()) == {1}
    assert output and all(line["response"]["status_code"] == 200 for line in output)
    assert errors and all(line["error"]["code"] == "batch_cancelled" and line["response"] is None
                          for line in errors)
    assert batch["request_counts"] == {"total": 20, "completed": len(output), "failed": len(errors)}


async def test_an_expired_batch_answers_unfinished_lines_with_batch_expired(redis: TestRedis,
                                                                           tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.02)
    config = make_config(make_policy(tmp_path), [fake.address], redis.url, batch_concurrency=2)
    try:
        async with gateway_app(config) as (client, _):
            batch_id = (await create(client, await upload(client, completion_lines(40, max_tokens=10), BETA), BETA,
                                     completion_window="1s"))["id"]
            batch = await wait_for(client, batch_id, BETA, timeout_s=10)
            output = await lines_of(client, batch["output_file_id"], BETA)
            errors = await lines_of(client, batch["error_file_id"], BETA)
    finally:
        await fake.server.stop(0)
    assert batch["status"] == "expired" and batch["expired_at"] >= batch["expires_at"]
    answers = _answers(output, errors)
    assert len(answers) == 40 and set(answers.values()) == {1}
    assert errors and {line["error"]["code"] for line in errors} == {"batch_expired"}


async def test_a_batch_that_expires_before_any_pass_validated_it_answers_every_line(redis: TestRedis,
                                                                                    tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.02)
    config = make_config(make_policy(tmp_path), [fake.address], redis.url)
    try:
        async with gateway_app(config) as (client, state):
            runner = runner_of(state)
            await runner.close()  # no passes of its own: the batch waits, unvalidated, past its window
            batch_id = (await create(client, await upload(client, completion_lines(5, max_tokens=10), BETA), BETA,
                                     completion_window="1s"))["id"]
            await asyncio.sleep(2.1)  # expires_at is in whole seconds
            await runner.run_once()
            batch = await wait_for(client, batch_id, BETA, timeout_s=5)
            errors = await lines_of(client, batch["error_file_id"], BETA)
    finally:
        await fake.server.stop(0)
    assert batch["status"] == "expired" and not batch["output_file_id"]
    assert sorted(line["custom_id"] for line in errors) == [f"req-{i}" for i in range(5)]
    assert {line["error"]["code"] for line in errors} == {"batch_expired"}


async def test_lines_claimed_by_a_gateway_that_died_are_taken_over(redis: TestRedis, tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.03)
    config = make_config(make_policy(tmp_path), [fake.address], redis.url, batch_claim_idle_s=0.5,
                         batch_concurrency=3)
    try:
        async with gateway_app(config) as (a, dying):
            batch_id = (await create(a, await upload(a, completion_lines(9, max_tokens=10), BETA), BETA))["id"]
            while fake.servicer.num_running < 3:  # the first gateway holds three lines...
                await asyncio.sleep(0.01)
            await runner_of(dying).close()  # ...and dies: no answer, no ack, its claims go stale
        taken = {p for p, n in fake.servicer.prompts.items() if n}
        async with gateway_app(config) as (b, survivor):
            batch = await wait_for(b, batch_id, BETA, timeout_s=15)
            output = await lines_of(b, batch["output_file_id"], BETA)
            assert runner_of(survivor).num_items_run == 9
    finally:
        await fake.server.stop(0)
    assert batch["status"] == "completed"
    assert len(output) == 9 and set(_answers(output).values()) == {1}
    assert len(taken) == 3 and all(fake.servicer.prompts[p] == 2 for p in taken)  # started twice, answered once


async def test_a_line_that_never_finishes_is_answered_with_an_error_after_max_deliveries(
        redis: TestRedis, fake: RunningFake, tmp_path: Path) -> None:
    # A poison line (here: the runner fails on it every time) is handed out again after each
    # failure; past MAX_DELIVERIES it gets an error answer instead of looping until expiry.
    from gateway.batches.runner import MAX_DELIVERIES

    config = make_config(make_policy(tmp_path), [fake.address], redis.url, batch_claim_idle_s=0.1)
    attempts: Counter[str] = Counter()
    async with gateway_app(config) as (client, state):
        runner = runner_of(state)
        execute = runner._execute

        async def poisoned(batch, body, custom_id):
            attempts[custom_id] += 1
            if custom_id == "req-1":
                raise RuntimeError("this line breaks whoever runs it")
            return await execute(batch, body, custom_id)

        runner._execute = poisoned  # type: ignore[method-assign]
        batch_id = (await create(client, await upload(client, completion_lines(3), BETA), BETA))["id"]
        batch = await wait_for(client, batch_id, BETA, timeout_s=20)
        output = await lines_of(client, batch["output_file_id"], BETA)
        errors = await lines_of(client, batch["error_file_id"], BETA)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    assert _answers(output, errors) == {"req-0": 1, "req-1": 1, "req-2": 1}
    (poison,) = errors
    assert poison["custom_id"] == "req-1" and poison["error"]["code"] == "too_many_attempts"
    assert attempts["req-1"] == MAX_DELIVERIES and attempts["req-0"] == attempts["req-2"] == 1


async def test_a_line_a_healthy_worker_fails_is_answered_with_its_error_not_retried(
        redis: TestRedis, fake: RunningFake, tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path), [fake.address], redis.url)
    lines = completion_lines(2) + request_line("bad", {"prompt": f"{FAILS_HERE} please", "max_tokens": 3}) + "\n"
    async with gateway_app(config) as (client, state):
        batch = await wait_for(client, (await create(client, await upload(client, lines, BETA), BETA))["id"], BETA)
        errors = await lines_of(client, batch["error_file_id"], BETA)
        assert len(state.pool.healthy()) == 1  # one request's failure never takes its worker out
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    (bad,) = errors
    assert bad["custom_id"] == "bad" and bad["response"]["status_code"] == 502
    assert bad["response"]["body"]["error"]["code"] == "worker_error"
    assert fake.servicer.prompts[f"{FAILS_HERE} please"] == 1, "the line's own failure is not retried"


async def test_without_redis_the_batch_api_says_why_and_generation_still_works(fake: RunningFake,
                                                                               tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path, rpm=1), [fake.address], None)
    async with gateway_app(config) as (client, _):
        for method, path in [("POST", "/v1/files"), ("GET", "/v1/batches"), ("GET", "/v1/batches/batch_x"),
                             ("POST", "/v1/endpoints/chat/batches"), ("GET", "/v1/endpoints/chat/files/file_x")]:
            r = await client.request(method, path, headers=ALPHA)
            error = r.json()["error"]
            assert r.status_code == 503 and "Redis" in error["message"], r.text
            assert (error["type"], error["code"]) == ("service_unavailable", "redis_not_configured"), r.text
        for _ in range(3):  # rpm=1, but without Redis there are no limits
            r = await client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2}, headers=ALPHA)
            assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers


async def _wait_completed_at_least(client, batch_id: str, n: int) -> None:
    for _ in range(400):
        batch = (await client.get(f"/v1/batches/{batch_id}", headers=BETA)).json()
        if batch["request_counts"]["completed"] >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"batch made no progress: {json.dumps(batch)}")
