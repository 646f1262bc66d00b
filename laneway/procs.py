"""Start real Laneway processes (workers, gateways) on free ports: for benchmarks and tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from laneway.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Proc:
    name: str
    cmd: list[str]
    port: int
    log_path: Path
    popen: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Proc:
        # Trace files and a launched Redis go beside the log: not into the checkout's .laneway,
        # and not shared with processes of other tests (an `env` entry still overrides it).
        data_dir = str(self.log_path.parent / "laneway-data")
        env = {**os.environ, "LANEWAY_DATA_DIR": data_dir, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(self.cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_port(self, timeout: float = 60.0) -> Proc:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not open port {self.port} in {timeout}s:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


def laneway_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "laneway.cli", *args]


def start_worker(tmp: Path, *extra: str, model: str = "tiny", name: str = "worker", kv_cache_memory: str = "16MB",
                 num_threads: int = 1) -> Proc:
    port = free_port()
    cmd = laneway_cmd("worker", "--port", str(port), "--model", model, "--kv-cache-memory", kv_cache_memory,
                      "--num-threads", str(num_threads), *extra)
    # A worker opens its port after loading the model and its warm-up: the `small` preset
    # takes minutes on a busy 2-core machine. A worker that dies is reported at once.
    return Proc(name, cmd, port, tmp / f"{name}-{port}.log").start().wait_port(timeout=300.0)


def start_gateway(tmp: Path, workers: list[Proc], *extra: str, name: str = "gateway") -> Proc:
    port = free_port()
    args = ["gateway", "--port", str(port)]
    for w in workers:
        args += ["--worker", w.address]
    proc = Proc(name, laneway_cmd(*args, *extra), port, tmp / f"{name}-{port}.log").start().wait_port()
    wait_ready(f"http://127.0.0.1:{port}")
    return proc


def wait_ready(base_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} never became ready")
