"""`laneway serve`'s supervisor: a child that dies is restarted with backoff, on its own clock;
its private Redis comes back on the same port with the data of its AOF."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from laneway.redis_server import RedisServer
from laneway.supervisor import Supervisor
from tests.lifecycle.conftest import wait_until

BOUND_S = 30.0


def _command(port: int, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(payload.encode())
            return s.recv(4096)
    except OSError:
        return b""


def test_a_killed_redis_is_restarted_on_its_port_with_its_aof(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    supervisor = Supervisor([redis])
    supervisor.start()
    try:
        assert _command(redis.port, "SET", "laneway", "kept") == b"+OK\r\n"
        assert redis.proc is not None
        first_pid = redis.proc.pid
        os.kill(first_pid, signal.SIGKILL)
        wait_until(lambda: _command(redis.port, "PING") == b"+PONG\r\n" and redis.proc.pid != first_pid,
                   BOUND_S, "Redis to be restarted")
        assert _command(redis.port, "GET", "laneway") == b"$4\r\nkept\r\n"
        assert supervisor.num_restarts(redis) == 1
    finally:
        supervisor.stop()
    assert not redis.is_running


class FlakyChild:
    """Its first start works, the `num_failures` after it raise; `crash()` makes it exit."""

    def __init__(self, name: str, num_failures: int = 0) -> None:
        self.name = name
        self.num_failures = num_failures
        self.num_starts = 0
        self.is_running = False
        self.exit_code: int | None = None

    def start(self) -> None:
        self.num_starts += 1
        if 1 < self.num_starts <= 1 + self.num_failures:
            raise RuntimeError(f"{self.name} cannot start yet")
        self.is_running, self.exit_code = True, None

    def crash(self) -> None:
        self.is_running, self.exit_code = False, -9

    def stop(self) -> None:
        self.is_running = False


def test_a_child_whose_restart_fails_is_tried_again_and_the_others_are_not_held_up() -> None:
    stubborn, healthy = FlakyChild("stubborn", num_failures=1), FlakyChild("healthy")
    supervisor = Supervisor([stubborn, healthy])
    supervisor.start()
    try:
        stubborn.crash()
        healthy.crash()
        wait_until(lambda: healthy.is_running, BOUND_S, "the healthy child to be restarted")
        wait_until(lambda: stubborn.is_running, BOUND_S, "the stubborn child to be restarted after its failed start")
        assert (stubborn.num_starts, healthy.num_starts) == (3, 2)
        assert supervisor.num_restarts(stubborn) == 2 and supervisor.num_restarts(healthy) == 1
    finally:
        supervisor.stop()
    assert not stubborn.is_running and not healthy.is_running
