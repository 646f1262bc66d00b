"""The private redis-server `laneway serve` starts: AOF in the data dir, one per dir, clear errors."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
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


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="the parent-death signal comes from util-linux's setpriv")
def test_redis_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A SIGKILLed launcher leaves no Redis behind (setpriv --pdeathsig, then exec: no Python
    runs in the child between fork and exec)."""
    script = ("import sys, time; from pathlib import Path; from laneway.redis_server import RedisServer; "
              "s = RedisServer(Path(sys.argv[1])).start(); print(s.proc.pid, s.port, flush=True); time.sleep(60)")
    launcher = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "redis")], stdout=subprocess.PIPE,
                                text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert launcher.stdout is not None
        pid, port = map(int, launcher.stdout.readline().split())
        assert _command(port, "PING") == b"+PONG\r\n"
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        assert b"redis-server" in argv0 and b"setpriv" not in argv0  # setpriv exec'd Redis in its place
    finally:
        launcher.kill()
        launcher.wait()
        if launcher.stdout is not None:
            launcher.stdout.close()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z", "Redis outlived the process that started it"


def _state(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return text[text.rindex(")") + 2]
