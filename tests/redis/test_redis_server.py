"""The private redis-server `laneway serve` starts: AOF in the data dir, one per dir, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from laneway.redis_server import RedisServer, RedisServerError, data_dir_from_env
from tests.support.redis_server import redis_server


def _command(port: int, *args: str) -> bytes:
    """One raw RESP command (no client library: this tests the server the launcher started)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload.encode())
        return s.recv(4096)


def test_data_survives_a_restart_in_the_aof(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        assert _command(server.port, "CONFIG", "GET", "appendonly").split(b"\r\n")[4] == b"yes"
        assert _command(server.port, "SET", "laneway", "kept") == b"+OK\r\n"
        port = server.port
        server.restart()  # SIGTERM flushes the AOF; same port, same directory
        assert server.is_running and server.port == port
        assert _command(server.port, "GET", "laneway") == b"$4\r\nkept\r\n"
        assert list((tmp_path / "redis").glob("appendonlydir/*.aof"))


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    first = RedisServer(tmp_path / "redis").start()
    try:
        with pytest.raises(RedisServerError, match="another Laneway process"):
            RedisServer(tmp_path / "redis").start()
    finally:
        first.kill()
    RedisServer(tmp_path / "redis").start().kill()  # the lock went with the first server


def test_a_missing_binary_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(RedisServerError, match="apt-get install redis-server"):
        RedisServer(tmp_path, executable="no-such-redis-server").start()


def test_data_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANEWAY_DATA_DIR", raising=False)
    assert data_dir_from_env() == Path(".laneway")
    monkeypatch.setenv("LANEWAY_DATA_DIR", "/var/lib/laneway")
    assert data_dir_from_env() == Path("/var/lib/laneway")
