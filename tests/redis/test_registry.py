"""Worker discovery: real workers announce themselves in Redis; a gateway picks them up and drops them."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.state import GatewayState
from tests.deploy.manifests import ROOT, package_folders
from tests.redis.factories import BETA, gateway_app, make_config, make_policy
from tests.support.processes import Proc, free_port, laneway_cmd
from tests.support.redis_server import TestRedis

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _worker(tmp: Path, redis: TestRedis, name: str, ttl_s: float) -> Proc:
    port = free_port()
    cmd = laneway_cmd("worker", "--port", str(port), "--model", "tiny", "--kv-cache-memory", "16MB",
                      "--num-threads", "1", "--registry-url", redis.url, "--registry-ttl", str(ttl_s))
    return Proc(name, cmd, port, tmp / f"{name}.log").start()


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def _addresses(state: GatewayState) -> set[str]:
    return {w.address for w in state.pool.workers}


def test_the_registry_keys_are_spelled_once() -> None:
    # Worker and gateway both import the contract module; a second spelling could drift from it.
    spelled = [str(p.relative_to(ROOT)) for folder in package_folders() for p in sorted((ROOT / folder).rglob("*.py"))
               if "lw:worker" in p.read_text()]
    assert spelled == ["proto/laneway_proto/registry_keys.py"]


async def test_workers_join_and_leave_a_running_gateway(redis: TestRedis, tmp_path: Path) -> None:
    config = make_config(make_policy(tmp_path), [], redis.url)
    async with gateway_app(config) as (client, state):
        assert (await client.get("/readyz")).status_code == 503  # no static workers, none registered yet
        crashing = _worker(tmp_path, redis, "crashing", ttl_s=1.5)
        draining = _worker(tmp_path, redis, "draining", ttl_s=60)
        try:
            await _until(lambda: _addresses(state) == {crashing.address, draining.address}, "both workers joined")
            await _until(lambda: len(state.pool.healthy()) == 2, "both workers healthy")
            r = await client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 3}, headers=BETA)
            assert r.status_code == 200 and r.json()["model"] == "tiny"

            redis.kill()  # an unreadable registry must not empty the rotation
            await asyncio.sleep(3 * config.registry_poll_interval_s)
            assert _addresses(state) == {crashing.address, draining.address}
            redis.start()

            crashing.kill(signal.SIGKILL)  # stops heartbeating: leaves after its TTL
            left_after = await _until(lambda: crashing.address not in _addresses(state), "the crashed worker left")
            assert left_after < 5
            assert draining.popen is not None
            os.killpg(draining.popen.pid, signal.SIGTERM)  # drains: withdraws at once, long before its TTL
            assert await _until(lambda: not _addresses(state), "the drained worker left") < 5
            assert (await client.get("/readyz")).status_code == 503
        finally:
            crashing.kill()
            draining.kill()
