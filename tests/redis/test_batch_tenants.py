"""The Batch API among tenants: fair slots, safe keys and ids, expiry, quota, rate limits,
Redis out of memory, keyless callers, and a tenant removed while its batch runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from lanes.policy import hash_api_key
from tests.redis.batch_client import completion_lines, create, upload, wait_for
from tests.redis.factories import ALPHA, BETA, gateway_app, make_config, make_policy
from tests.redis.fake_worker import start_fake_worker
from tests.support.redis_server import TestRedis

pytestmark = pytest.mark.anyio


def _edit_policy(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


async def test_a_small_batch_finishes_while_a_huge_one_from_another_tenant_runs(redis: TestRedis,
                                                                                tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.01)
    config = make_config(make_policy(tmp_path, rpm=None, tpm=None), [fake.address], redis.url, batch_concurrency=4)
    try:
        async with gateway_app(config) as (client, state):
            huge = (await create(client, await upload(client, completion_lines(300, max_tokens=10), ALPHA),
                                 ALPHA))["id"]
            await wait_for(client, huge, ALPHA, statuses={"in_progress"})
            small = (await create(client, await upload(client, completion_lines(10, max_tokens=10), BETA),
                                  BETA))["id"]
            done = await wait_for(client, small, BETA, timeout_s=60)
            huge_then = (await client.get(f"/v1/batches/{huge}", headers=ALPHA)).json()
            await client.post(f"/v1/batches/{huge}/cancel", headers=ALPHA)
    finally:
        await fake.server.stop(0)
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 10
    assert huge_then["status"] == "in_progress", "the small batch waited for the huge one to finish"
    assert huge_then["request_counts"]["completed"] < 300


async def test_a_tenant_named_active_and_crafted_ids(redis: TestRedis, tmp_path: Path) -> None:
    fake = await start_fake_worker()
    policy = make_policy(tmp_path)
    active = {"Authorization": "Bearer sk-active"}
    _edit_policy(policy, lambda d: d["tenants"].update(
        {"active": {"keys_sha256": [hash_api_key("sk-active")], "endpoints": "*"}}))
    try:
        async with gateway_app(make_config(policy, [fake.address], redis.url)) as (client, _):
            batch = await create(client, await upload(client, completion_lines(3), active), active)
            finished = await wait_for(client, batch["id"], active)
            probes = [await client.get(url, headers=BETA) for url in (
                "/v1/files/lw:batches:active", "/v1/files/file-x/content", "/v1/batches/lw:batches:active",
                f"/v1/batches/{batch['id']}:items")]
            wrong_input = await client.post("/v1/batches", headers=BETA, json={
                "input_file_id": "../batch", "endpoint": "/v1/completions", "completion_window": "24h"})
    finally:
        await fake.server.stop(0)
    assert finished["status"] == "completed" and finished["request_counts"]["completed"] == 3
    assert [r.status_code for r in probes] == [404] * 4
    assert all(r.json()["error"]["code"] == "not_found" for r in probes)
    assert wrong_input.status_code == 404 and wrong_input.json()["error"]["param"] == "input_file_id"


async def test_files_expire_and_count_against_the_tenant_quota(redis: TestRedis, tmp_path: Path) -> None:
    content = completion_lines(5)
    config = make_config(make_policy(tmp_path), ["127.0.0.1:1"], redis.url,
                         max_tenant_file_bytes=len(content.encode()) * 2)
    r = aioredis.from_url(redis.url, decode_responses=True)
    try:
        async with gateway_app(config) as (client, _):
            files = {"file": ("in.jsonl", content.encode())}
            first = await client.post("/v1/files", files=files, headers=BETA, data={
                "purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"})
            second = await client.post("/v1/files", files=files, headers=BETA, data={"purpose": "batch"})
            third = await client.post("/v1/files", files=files, headers=BETA, data={"purpose": "batch"})
            other_tenant = await client.post("/v1/files", files=files, headers=ALPHA, data={"purpose": "batch"})
            bad = await client.post("/v1/files", files=files, headers=BETA, data={
                "purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "5"})
            ttl = await r.ttl(f"lw:file:{first.json()['id']}:content")
            await client.delete(f"/v1/files/{first.json()['id']}", headers=BETA)
            after_delete = await client.post("/v1/files", files=files, headers=BETA, data={"purpose": "batch"})
    finally:
        await r.aclose()
    assert first.status_code == 200 and first.json()["expires_at"] == first.json()["created_at"] + 3600
    assert 3500 < ttl <= 3600
    assert second.status_code == 200 and second.json()["expires_at"] == second.json()["created_at"] + 30 * 86400
    assert third.status_code == 413 and third.json()["error"]["code"] == "storage_quota_exceeded"
    assert other_tenant.status_code == 200, "the quota is per tenant"
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "expires_after.seconds"
    assert after_delete.status_code == 200, "deleting a file gives its bytes back"


async def test_file_and_batch_routes_count_against_the_tenants_rpm(redis: TestRedis, tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path, rpm=3), ["127.0.0.1:1"], redis.url)
    async with gateway_app(config) as (client, _):
        codes = [(await client.get("/v1/files", headers=ALPHA)).status_code for _ in range(4)]
        refused = await client.get("/v1/batches", headers=ALPHA)
        unlimited = await client.get("/v1/batches", headers=BETA)
    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429 and refused.headers["x-laneway-reject-reason"] == "rate-limit"
    assert unlimited.status_code == 200


async def test_redis_out_of_memory_is_reported_as_such_and_never_opens_the_limiter(redis: TestRedis,
                                                                                   tmp_path: Path) -> None:
    fake = await start_fake_worker()
    config = make_config(make_policy(tmp_path), [fake.address], redis.url)
    r = aioredis.from_url(redis.url, decode_responses=True)
    try:
        async with gateway_app(config) as (client, state):
            await r.config_set("maxmemory-policy", "noeviction")
            await r.config_set("maxmemory", "1")
            try:
                upload_r = await client.post("/v1/files", files={"file": ("in.jsonl", b"{}\n")},
                                             data={"purpose": "batch"}, headers=BETA)
                chat = await client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2}, headers=ALPHA)
            finally:
                await r.config_set("maxmemory", "0")
            unchecked = state.limiter.num_unchecked
    finally:
        await r.aclose()
        await fake.server.stop(0)
    assert upload_r.status_code == 507 and upload_r.json()["error"]["code"] == "redis_out_of_memory"
    assert chat.status_code == 503 and chat.headers["x-laneway-reject-reason"] == "redis-out-of-memory"
    assert unchecked == 0, "an out-of-memory Redis must not let requests through unchecked"


async def test_keyless_callers_use_the_batch_api_only_when_the_policy_shares_a_namespace(
        redis: TestRedis, tmp_path: Path) -> None:
    policy = make_policy(tmp_path)
    _edit_policy(policy, lambda d: d.update(auth={"required": False}))
    config = make_config(policy, ["127.0.0.1:1"], redis.url, policy_poll_interval_s=0.05)
    async with gateway_app(config) as (client, state):
        refused = await client.get("/v1/files")
        _edit_policy(policy, lambda d: d["tenants"].update(
            {"anonymous": {"endpoints": "*", "shared_batches": True}}))
        for _ in range(100):
            if state.policy_store.policy.has_keyless_batches:
                break
            await asyncio.sleep(0.05)
        allowed = await client.get("/v1/files")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "api_key_required"
    assert "shared_batches" in refused.json()["error"]["message"]
    assert allowed.status_code == 200


async def test_removing_a_tenant_stops_its_batch_and_fails_the_remaining_lines(redis: TestRedis,
                                                                               tmp_path: Path) -> None:
    fake = await start_fake_worker(token_delay_s=0.02)
    policy = make_policy(tmp_path)
    config = make_config(policy, [fake.address], redis.url, batch_concurrency=2, policy_poll_interval_s=0.05)
    try:
        async with gateway_app(config) as (client, state):
            batch_id = (await create(client, await upload(client, completion_lines(40, max_tokens=8), BETA),
                                     BETA))["id"]
            await wait_for(client, batch_id, BETA, statuses={"in_progress"})
            _edit_policy(policy, lambda d: d["tenants"].pop("beta"))
            store = state.batches.store()
            for _ in range(200):
                batch = await store.get(batch_id)
                if batch is not None and batch.status.is_final:
                    break
                await asyncio.sleep(0.05)
            assert batch is not None
            errors = (await store.files.content(batch.error_file_id or "", "beta") or "").splitlines()
            kept_out = await client.get(f"/v1/batches/{batch_id}", headers=BETA)
    finally:
        await fake.server.stop(0)
    assert batch.status.value == "cancelled"
    assert errors and batch.completed + batch.failed == 40
    codes = {json.loads(line)["error"]["code"] for line in errors}
    assert codes == {"tenant_removed"}
    assert kept_out.status_code == 401
