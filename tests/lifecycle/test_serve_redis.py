"""`laneway serve` with its private Redis: kill -9 Redis and the launcher restarts it on the
same port and AOF file; a fail-closed endpoint refuses while it is down and serves again,
rate limits checked, once it is back, with the counts written before the crash intact."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
import yaml

from lanes.policy import hash_api_key
from tests.lifecycle.conftest import children, cmdline, spawn, wait_until
from tests.support.processes import free_port, wait_ready

pytestmark = pytest.mark.integration

BOUND_S = 60.0
KEY = "sk-serve-redis"
RPM = 1000


def _policy(tmp: Path) -> Path:
    policy = {
        "version": 1,
        "default_endpoint": "open",
        "auth": {"required": True},
        "lanes": {"interactive": {"priority": 0, "batch_window_ms": 2, "max_batch_size": 8, "max_queue_depth": 64,
                                  "max_queue_wait_ms": 10_000}},
        "endpoints": {"strict": {"lane": "interactive", "on_redis_unavailable": "closed", "limits": {"max_tokens": 4}},
                      "open": {"lane": "interactive", "on_redis_unavailable": "open", "limits": {"max_tokens": 4}}},
        "tenants": {"t": {"keys_sha256": [hash_api_key(KEY)], "endpoints": "*", "rpm": RPM}},
    }
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _redis_children(launcher_pid: int) -> dict[int, int]:
    """pid -> port of the launcher's redis-server children (Redis retitles itself 'redis-server HOST:PORT')."""
    found = {}
    for pid in children(launcher_pid):
        args = cmdline(pid)
        if args and "redis-server" in args[0]:  # as started (--port N), or once it retitled itself
            found[pid] = int(args[args.index("--port") + 1] if "--port" in args else args[-1].rsplit(":", 1)[1])
    return found


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def test_a_killed_private_redis_is_restarted_and_the_fail_closed_endpoint_serves_again(tmp_path: Path) -> None:
    port = free_port()
    launcher = spawn(tmp_path, "serve", "serve", "--model", "tiny", "--workers", "1", "--kv-cache-memory", "16MB",
                     "--policy", str(_policy(tmp_path)), "--port", str(port), port=port)
    base = f"http://127.0.0.1:{port}"

    def post(endpoint: str) -> httpx.Response:
        return httpx.post(f"{base}/v1/endpoints/{endpoint}/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"prompt": "hi", "max_tokens": 2}, timeout=30)

    try:
        wait_ready(base, timeout=BOUND_S)
        assert launcher.popen is not None
        before = [post("strict") for _ in range(3)]
        assert [r.status_code for r in before] == [200] * 3, launcher.log_tail()
        (redis_pid, redis_port), = _redis_children(launcher.popen.pid).items()

        os.kill(redis_pid, signal.SIGKILL)
        wait_until(lambda: redis_pid not in _redis_children(launcher.popen.pid), 10, "the killed Redis to be gone")
        down = post("strict")  # refused while Redis is down (a 200 only if its restart already won the race)
        assert (down.status_code, down.headers.get("x-laneway-reject-reason")) in {
            (503, "redis-unavailable"), (200, None)}, down
        assert post("open").status_code == 200  # fail-open endpoints serve throughout

        new_pid = wait_until(lambda: next((p for p, port_ in _redis_children(launcher.popen.pid).items()
                                           if p != redis_pid and port_ == redis_port and _answers_ping(port_)), None),
                             BOUND_S, "Redis restarted on its port")
        after = wait_until(lambda: (r := post("strict")).status_code == 200 and r, BOUND_S,
                           "the fail-closed endpoint serving again")
        # The same AOF: the requests admitted before the crash still count in this minute's window.
        assert int(after.headers["x-ratelimit-remaining-requests"]) <= RPM - len(before) - 1, after.headers
        assert "restarting Redis on port" in launcher.log_tail(200) and new_pid != redis_pid
    finally:
        launcher.stop()
        assert launcher.popen is not None and launcher.popen.returncode == 0, launcher.log_tail()
