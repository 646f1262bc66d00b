"""A private `redis-server` for one machine: AOF persistence in Laneway's data directory.

`laneway serve` starts one unless `--redis-url` / `LANEWAY_REDIS_URL` names an existing
Redis. The binary comes from PATH; the expected source is Debian's `redis-server`
package, which `make install` installs when it is missing (`apt-get install redis-server`).

Durability: append-only file with fsync every second (`appendfsync everysec`), no RDB
snapshots. A SIGKILL of the gateway loses nothing (Redis is another process); a crash of
the whole machine loses at most the last second of writes. A lock file keeps two
launchers from running two servers on one data directory.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from laneway.ports import free_port
from laneway.supervisor import PopenChild

DEFAULT_DATA_DIR = Path(".laneway")
INSTALL_HINT = ("redis-server was not found on PATH; install Debian's package (`apt-get install redis-server`, "
                "which `make install` does), or point Laneway at an existing Redis with --redis-url / "
                "LANEWAY_REDIS_URL")


class RedisServerError(RuntimeError):
    """The private Redis could not be started (missing binary, data directory in use, no answer)."""


def data_dir_from_env() -> Path:
    return Path(os.environ.get("LANEWAY_DATA_DIR") or DEFAULT_DATA_DIR)


def _parent_death_prefix() -> list[str]:
    """`setpriv --pdeathsig TERM --` (util-linux): the helper sets the kernel's parent-death
    signal on itself and execs redis-server in its place. Nothing of Python's runs between fork
    and exec; a preexec_fn did, and a restart forks from a busy, threaded process (gRPC's threads
    beside the gateway's) where such a child can crash before its exec: a restarted Redis died
    of SIGSEGV that way. Without setpriv, no parent-death signal: the launcher's own shutdown
    still stops Redis."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


class RedisServer(PopenChild):
    """One redis-server process bound to 127.0.0.1, with its files under `data_dir`.

    `start()` after `stop()` or `kill()` reuses the port and the AOF, so the data survives
    a restart (tests rely on that to kill Redis under traffic and bring it back).
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, executable: str = "redis-server",
                 die_with_parent: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.executable = executable
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None
        self._lock_file: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def name(self) -> str:
        return f"Redis on port {self.port}"

    def start(self, timeout_s: float = 15.0) -> RedisServer:
        binary = shutil.which(self.executable)
        if binary is None:
            raise RedisServerError(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        prefix = _parent_death_prefix() if self.die_with_parent else []
        cmd = [*prefix, binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
               "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
               "--logfile", str(self.data_dir / "redis.log"), "--protected-mode", "yes"]
        with open(self.data_dir / "redis.stderr", "ab") as err:  # config errors come before the logfile
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        self._wait_ready(timeout_s)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits."""
        if self.is_running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._unlock()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to clients."""
        if self.is_running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
        self._unlock()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                output = _tail(self.data_dir / "redis.stderr") + _tail(self.data_dir / "redis.log")
                self._unlock()
                raise RedisServerError(f"redis-server exited with {self.proc.returncode}:{output}")
            if answers_ping(self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise RedisServerError(f"redis-server on port {self.port} did not answer PING within {timeout_s}s")

    def _lock(self) -> None:
        if self._lock_file is not None:
            return
        fd = os.open(self.data_dir / "laneway-redis.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RedisServerError(f"another Laneway process runs a Redis in {self.data_dir}; stop it, or "
                                   "set LANEWAY_DATA_DIR / --data-dir to another directory") from None
        self._lock_file = fd

    def _unlock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing releases the flock
            self._lock_file = None


def answers_ping(port: int) -> bool:
    """PONG, not LOADING: Redis answers only once the AOF is loaded."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _tail(path: Path, num_lines: int = 10) -> str:
    try:
        return "\n" + "\n".join(path.read_text(errors="replace").splitlines()[-num_lines:])
    except OSError:
        return ""
