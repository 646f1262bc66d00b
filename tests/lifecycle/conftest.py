"""Real processes for lifecycle and resilience tests: a tiny worker, a gateway, a Redis.

One worker is shared by every test that does not stop it, and one gateway (with Redis)
by the tests that only send traffic (fuzzing, overload); tests that kill or stop a
gateway, or need other limits, start their own. Every process gets
LANEWAY_TRACING=off (no trace files in the repository) and a log under the test's tmp dir,
whose tail is in the assertion message when something goes wrong.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from laneway_proto import worker_pb2 as pb
from laneway_proto import worker_pb2_grpc as pb_grpc
from tests.support.processes import Proc, free_port, laneway_cmd, wait_ready
from tests.support.redis_server import TestRedis, redis_server

QUIET = {"LANEWAY_TRACING": "off"}

# Budgets are loose on purpose: 2 shared CPU cores, and the tests compare against them.
POLICY = """\
version: 1
default_endpoint: inline
auth: {required: false}
lanes:
  interactive: {priority: 0, batch_window_ms: 2, max_batch_size: 8, max_queue_depth: 64, max_queue_wait_ms: 500}
  streaming: {priority: 1, batch_window_ms: 5, max_batch_size: 16, max_queue_depth: 256, max_queue_wait_ms: 5000}
  held:
    kind: bulk
    priority: 2
    batch_window_ms: 60000
    max_batch_size: 64
    max_queue_depth: 64
    max_queue_wait_ms: 600000
  bulk:
    priority: 3
    batch_window_ms: 20
    max_batch_size: 16
    max_queue_depth: 10000
    max_queue_wait_ms: 600000
    capacity_share: {seqs: 0.5, kv: 0.5}
    preemptible: true
    backfill: true
endpoints:
  inline: {lane: interactive, slo: {ttft_p95_ms: 2000}, limits: {max_tokens: 64, max_prompt_tokens: 256}}
  chat: {lane: streaming, slo: {ttft_p95_ms: 5000}, limits: {max_tokens: 400, max_prompt_tokens: 256}}
  long: {lane: streaming, limits: {max_tokens: 1900, max_prompt_tokens: 64}}
  nightly: {lane: bulk, limits: {max_tokens: 64, max_prompt_tokens: 256}}
  parked: {lane: held, limits: {max_tokens: 8}}
"""
# `parked` requests wait for a 60 s batch window: whatever is in flight, they are still
# queued when a test stops the gateway, so the test sees what happens to queued work.
# `long` streams run for seconds on the tiny model (fuzzing never guesses its name).


def spawn(tmp: Path, name: str, *args: str, port: int | None = None) -> Proc:
    port = port or free_port()
    return Proc(name, laneway_cmd(*args), port, tmp / f"{name}-{port}.log", env=dict(QUIET)).start()


def start_worker(tmp: Path, *extra: str, name: str = "worker") -> Proc:
    port = free_port()
    return spawn(tmp, name, "worker", "--port", str(port), "--model", "tiny", "--kv-cache-memory", "16MB",
                 "--num-threads", "1", *extra, port=port).wait_port()


def start_gateway(tmp: Path, workers: list[Proc], policy: Path, *extra: str, name: str = "gateway") -> Proc:
    port = free_port()
    args = ["gateway", "--port", str(port), "--policy", str(policy)]
    for w in workers:
        args += ["--worker", w.address]
    proc = spawn(tmp, name, *args, *extra, port=port).wait_port()
    wait_ready(f"http://127.0.0.1:{port}")
    return proc


def url(proc: Proc) -> str:
    return f"http://127.0.0.1:{proc.port}"


def worker_load(address: str) -> pb.LoadReport:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.WorkerStub(channel).Load(pb.LoadRequest(), timeout=5)


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll until predicate() is truthy; returns its value. Bounded: raises with `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class Cluster:
    base: str
    gateway: Proc
    worker: Proc
    redis: TestRedis | None
    tmp: Path

    def logs(self) -> str:
        return f"--- gateway log ---\n{self.gateway.log_tail()}\n--- worker log ---\n{self.worker.log_tail()}"


@pytest.fixture(scope="package")
def lifecycle_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lifecycle")


@pytest.fixture(scope="package")
def policy_path(lifecycle_tmp: Path) -> Path:
    path = lifecycle_tmp / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture(scope="package")
def shared_worker(lifecycle_tmp: Path) -> Iterator[Proc]:
    # Two sequence slots: overload is cheap to generate, and queueing shows up quickly.
    w = start_worker(lifecycle_tmp, "--max-num-seqs", "2", name="shared-worker")
    yield w
    w.stop()


@pytest.fixture(scope="package")
def cluster(lifecycle_tmp: Path, policy_path: Path, shared_worker: Proc) -> Iterator[Cluster]:
    """Gateway with Redis: rate limits and the Batch API are live, so fuzzing reaches them.
    Default edge limits: under overload a starved event loop must not look like a slow client."""
    with redis_server(lifecycle_tmp) as redis:
        gateway = start_gateway(lifecycle_tmp, [shared_worker], policy_path, "--redis-url", redis.url,
                                name="shared-gateway")
        yield Cluster(url(gateway), gateway, shared_worker, redis, lifecycle_tmp)
        gateway.stop()
        assert gateway.popen is not None and gateway.popen.returncode == 0, \
            f"the gateway did not exit cleanly on SIGTERM:\n{gateway.log_tail()}"


def post_completion(base: str, endpoint: str = "inline", timeout: float = 30, **body) -> httpx.Response:
    return httpx.post(f"{base}/v1/endpoints/{endpoint}/completions",
                      json={"prompt": "hello", "max_tokens": 4, **body}, timeout=timeout)


def children(pid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode() for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
