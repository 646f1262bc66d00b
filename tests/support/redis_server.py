"""A real redis-server per test (or module) on a free port, with a tmp dir and AOF.

Wraps the launcher's own `laneway.redis_server.RedisServer`, so tests exercise the code
`laneway serve` uses. Never the system Redis on 6379: tests kill and restart theirs.

    with redis_server(tmp_path) as server:
        server.url; server.kill(); server.restart()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from laneway.redis_server import RedisServer


class TestRedis(RedisServer):
    __test__ = False  # not a pytest test class

    def restart(self, *, hard: bool = False) -> TestRedis:
        """Stop (SIGTERM, or SIGKILL with hard=True) and start again on the same port and AOF."""
        self.kill() if hard else self.stop()
        self.start()
        return self


@contextlib.contextmanager
def redis_server(tmp_dir: Path) -> Iterator[TestRedis]:
    # PDEATHSIG (die_with_parent) fires when the *thread* that forked exits: start and
    # restart from the test's main thread, never from asyncio.to_thread.
    server = TestRedis(tmp_dir / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
