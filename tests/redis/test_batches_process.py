"""The Batch API across real processes: the official openai client, the CLI, and a SIGKILLed gateway."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.redis.batch_client import FINAL, request_line
from tests.redis.factories import ALPHA, ALPHA_KEY, BETA_KEY, make_policy
from tests.support.processes import Proc, laneway_cmd, start_gateway, start_worker
from tests.support.redis_server import TestRedis, redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batch-procs")


@pytest.fixture(scope="module")
def shared_redis(procs: Path) -> Iterator[TestRedis]:
    with redis_server(procs) as server:
        yield server


@pytest.fixture(scope="module")
def worker(procs: Path) -> Iterator[Proc]:
    w = start_worker(procs)
    yield w
    w.stop()


def _gateway(procs: Path, worker: Proc, redis: TestRedis, *extra: str, name: str = "gateway") -> Proc:
    return start_gateway(procs, [worker], "--policy", str(make_policy(procs)), "--redis-url", redis.url, *extra,
                         name=name)


@pytest.fixture(scope="module")
def gateway(procs: Path, worker: Proc, shared_redis: TestRedis) -> Iterator[str]:
    g = _gateway(procs, worker, shared_redis)
    yield f"http://127.0.0.1:{g.port}"
    g.stop()


def _lines(n: int, max_tokens: int, prefix: str = "line") -> str:
    return "".join(request_line(f"{prefix}-{i}", {"prompt": f"{prefix} number {i}", "max_tokens": max_tokens,
                                                  "ignore_eos": True, "temperature": 0}) + "\n" for i in range(n))


def _wait(client: openai.OpenAI, batch_id: str, timeout_s: float = 60) -> openai.types.Batch:
    deadline = time.monotonic() + timeout_s
    while (batch := client.batches.retrieve(batch_id)).status not in FINAL:
        assert time.monotonic() < deadline, f"batch stuck: {batch}"
        time.sleep(0.1)
    return batch


def test_the_official_openai_client_runs_a_batch(gateway: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=ALPHA_KEY, max_retries=0)
    uploaded = client.files.create(file=("input.jsonl", _lines(6, 4).encode()), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    assert client.files.retrieve(uploaded.id).filename == "input.jsonl"
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h",
                                  metadata={"laneway_endpoint": "labeling"})
    assert batch.status == "validating"
    batch = _wait(client, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 6 and batch.output_file_id
    output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    assert [line["custom_id"] for line in output] == [f"line-{i}" for i in range(6)]
    body = output[0]["response"]["body"]
    assert body["object"] == "text_completion" and body["usage"]["completion_tokens"] == 4
    assert batch.id in [b.id for b in client.batches.list(limit=5)]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)
    other = openai.OpenAI(base_url=f"{gateway}/v1", api_key=BETA_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(batch.output_file_id)
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_laneway_batch_submit_and_results(gateway: str, procs: Path) -> None:
    path = procs / "cli-input.jsonl"
    path.write_text(_lines(4, 3, prefix="cli"))
    conn = ["--url", gateway, "--api-key", ALPHA_KEY]
    submit = subprocess.run(laneway_cmd("batch", "submit", str(path), "--endpoint", "labeling", *conn),
                            capture_output=True, text=True, timeout=60)
    assert submit.returncode == 0, submit.stderr
    batch_id = submit.stdout.strip()
    assert batch_id.startswith("batch_") and "completed" in submit.stderr and "4/4 done" in submit.stderr
    results = subprocess.run(laneway_cmd("batch", "results", batch_id, *conn), capture_output=True, text=True,
                             timeout=60)
    assert results.returncode == 0, results.stderr
    assert sorted(json.loads(line)["custom_id"] for line in results.stdout.splitlines()) == [
        f"cli-{i}" for i in range(4)]


def test_a_sigkilled_gateway_restarted_answers_every_line_exactly_once(procs: Path, worker: Proc,
                                                                       shared_redis: TestRedis) -> None:
    first = _gateway(procs, worker, shared_redis, "--batch-claim-timeout", "1", name="doomed")
    url = f"http://127.0.0.1:{first.port}"
    up = httpx.post(f"{url}/v1/files", files={"file": ("in.jsonl", _lines(60, 24, prefix="k").encode())},
                    data={"purpose": "batch"}, headers=ALPHA).json()
    batch_id = httpx.post(f"{url}/v1/batches", headers=ALPHA, json={
        "input_file_id": up["id"], "endpoint": "/v1/completions", "completion_window": "24h"}).json()["id"]
    deadline = time.monotonic() + 30
    while (done := httpx.get(f"{url}/v1/batches/{batch_id}", headers=ALPHA).json()["request_counts"])[
            "completed"] < 6:
        assert time.monotonic() < deadline, done
        time.sleep(0.01)
    first.kill()  # SIGKILL mid-batch: lines in flight stay claimed by a consumer that is gone
    second = _gateway(procs, worker, shared_redis, "--batch-claim-timeout", "1", name="survivor")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{second.port}/v1", api_key=ALPHA_KEY, max_retries=0)
        batch = _wait(client, batch_id)
        output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    finally:
        second.stop()
    assert done["completed"] < 60, "the kill came too late to test recovery"
    assert batch.status == "completed" and batch.error_file_id is None
    answers = Counter(line["custom_id"] for line in output)
    assert set(answers) == {f"k-{i}" for i in range(60)} and set(answers.values()) == {1}
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert all(line["response"]["body"]["usage"]["completion_tokens"] == 24 for line in output)
