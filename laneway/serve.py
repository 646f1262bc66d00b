"""`laneway serve`: workers and a gateway on one machine, supervised.

Workers are child processes; the gateway runs in this process on uvicorn. Children get
PDEATHSIG so even a SIGKILL of the launcher leaves no orphan worker; on Ctrl-C/SIGTERM the
gateway stops first, then workers drain.

Redis (rate limits, Batch API): a private `redis-server` from PATH (Debian's package;
`make install` installs it) with AOF persistence in the data directory ($LANEWAY_DATA_DIR,
default ./.laneway), unless --redis-url / LANEWAY_REDIS_URL names one or --no-redis.

The private Redis and the workers are supervised alike (laneway/supervisor.py): one that
dies is restarted with backoff, on the same port, Redis on the same AOF.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.config import DEFAULT_POLICY
from gateway.main import add_edge_arguments, server_config_from_args
from laneway.ports import free_port
from laneway.redis_server import RedisServer, RedisServerError, data_dir_from_env
from laneway.supervisor import Child, PopenChild, Supervisor
from workers.parent_watch import child_env


class WorkerProcess(PopenChild):
    """One `laneway worker` child on a fixed port (a supervisor Child)."""

    def __init__(self, port: int, args: list[str]) -> None:
        self.port = port
        self.args = args
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        return f"worker on port {self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "laneway.cli", "worker", "--port", str(self.port), *self.args]
        # No preexec_fn: the worker sets its own parent-death signal (workers/parent_watch.py).
        self.proc = subprocess.Popen(cmd, env={**os.environ, **child_env()})

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=os.environ.get("LANEWAY_MODEL", "small"),
                   help="preset (tiny, small) or local HF model directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--policy", type=Path, default=Path(os.environ.get("LANEWAY_POLICY", DEFAULT_POLICY)))
    p.add_argument("--kv-cache-memory", default="512MB")
    p.add_argument("--worker-arg", action="append", default=[], help="extra argument passed to each worker")
    p.add_argument("--redis-url", default=os.environ.get("LANEWAY_REDIS_URL") or None,
                   help="use this Redis instead of starting a private one (default: $LANEWAY_REDIS_URL)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the private Redis keeps its AOF (default: $LANEWAY_DATA_DIR or ./.laneway)")
    p.add_argument("--no-redis", action="store_true",
                   help="run without Redis: no rate limits, no Batch API")
    add_edge_arguments(p)


def run(a: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.config import GatewayConfig
    from gateway.server import serve
    from lanes.policy import PolicyError, load_policy

    logging.basicConfig(level=os.environ.get("LANEWAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        load_policy(a.policy)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    threads = max(1, (os.cpu_count() or 1) // a.workers)
    worker_args = ["--model", a.model, "--kv-cache-memory", a.kv_cache_memory, "--num-threads", str(threads),
                   *a.worker_arg]
    try:
        redis = _private_redis(a)  # first: a missing redis-server stops us before any worker starts
    except RedisServerError as exc:
        print(exc, file=sys.stderr)
        return 2
    workers = [WorkerProcess(free_port(), worker_args) for _ in range(a.workers)]
    children: list[Child] = [*([redis] if redis is not None else []), *workers]
    supervisor = Supervisor(children)  # Redis is running already: it starts the workers
    supervisor.start()
    redis_url = redis.url if redis is not None else a.redis_url
    config = GatewayConfig(worker_addresses=tuple(w.address for w in workers), policy_path=a.policy,
                           redis_url=redis_url, max_body_bytes=a.max_body_bytes,
                           request_body_timeout_s=a.request_body_timeout)
    url = f"http://{a.host}:{a.port}"
    where = f"private Redis in {redis.data_dir}" if redis else (f"Redis {redis_url}" if redis_url else "no Redis")
    print(f"\nLaneway: gateway {url}, {a.workers} worker(s) serving {a.model!r}, policy {a.policy}, {where}\n"
          f"Try:\n  curl {url}/v1/completions -H 'Content-Type: application/json' "
          f"-d '{{\"prompt\": \"Hello\", \"max_tokens\": 16}}'\n", flush=True)
    try:
        _wait_ready(workers, timeout_s=120)
        serve(create_app(config), server_config_from_args(a))  # SIGTERM: the gateway drains, then workers do
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()  # workers, then Redis
    return 0


def _private_redis(a: argparse.Namespace) -> RedisServer | None:
    """Start the private Redis unless one is named (--redis-url) or none is wanted (--no-redis)."""
    if a.redis_url or a.no_redis:
        return None
    return RedisServer((a.data_dir or data_dir_from_env()) / "redis").start()


def _wait_ready(workers: list[WorkerProcess], timeout_s: float) -> None:
    """Block until each worker's port accepts connections (the model is loaded)."""
    deadline = time.monotonic() + timeout_s
    for w in workers:
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", w.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
