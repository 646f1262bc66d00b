"""One request end to end: HTTP -> gateway -> gRPC -> worker engine -> tokens back."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.integration.conftest import worker_load
from tests.support.processes import Proc

pytestmark = pytest.mark.integration


def _events(lines: list[str]) -> list[dict | str]:
    out: list[dict | str] = []
    for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_completion_returns_text_and_usage(gateway: str) -> None:
    r = httpx.post(f"{gateway}/v1/completions", json={"prompt": "Hello", "max_tokens": 8, "ignore_eos": True},
                   timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 8
    assert body["usage"]["prompt_tokens"] == len(b"Hello") + 1  # byte-level tokenizer plus BOS
    assert isinstance(body["choices"][0]["text"], str)


def test_greedy_completion_is_deterministic(gateway: str) -> None:
    req = {"prompt": "The lanes are", "max_tokens": 12, "temperature": 0, "ignore_eos": True}
    a = httpx.post(f"{gateway}/v1/completions", json=req, timeout=30).json()
    b = httpx.post(f"{gateway}/v1/completions", json=req, timeout=30).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"]


def test_chat_completion(gateway: str) -> None:
    r = httpx.post(f"{gateway}/v1/chat/completions", timeout=30,
                   json={"messages": [{"role": "user", "content": "Hi there"}], "max_tokens": 6, "ignore_eos": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] == 6


def test_streaming_completion_matches_non_streaming(gateway: str) -> None:
    req = {"prompt": "stream me", "max_tokens": 10, "temperature": 0, "ignore_eos": True}
    full = httpx.post(f"{gateway}/v1/completions", json=req, timeout=30).json()["choices"][0]["text"]
    with httpx.stream("POST", f"{gateway}/v1/completions", json={**req, "stream": True}, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _events(list(r.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    assert "".join(c["choices"][0]["text"] for c in chunks) == full
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_streaming_chat_with_usage(gateway: str) -> None:
    req = {"messages": [{"role": "user", "content": "stream"}], "max_tokens": 5, "stream": True,
           "stream_options": {"include_usage": True}, "ignore_eos": True}
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=req, timeout=30) as r:
        events = _events(list(r.iter_lines()))
    chunks = [e for e in events if isinstance(e, dict)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"max_tokens": 4}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "x", "max_tokens": 0}).encode(), 400, "max_tokens"),
        (json.dumps({"prompt": "x", "max_tokens": 10**9}).encode(), 400, "max_tokens"),
        (json.dumps({"prompt": "x", "max_tokens": "ten"}).encode(), 400, "max_tokens"),
        (json.dumps({"prompt": ""}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "x", "model": "gpt-9"}).encode(), 404, "gpt-9"),
        (json.dumps({"prompt": "x" * 3000, "max_tokens": 4}).encode(), 400, "context length"),
        (json.dumps({"prompt": "x" * 5000, "max_tokens": 4}).encode(), 400, "accepts at most 4096"),
        (json.dumps({"prompt": "x", "max_tokens": 5000}).encode(), 400, "over this endpoint's limit"),
        (json.dumps({"prompt": "x", "temperature": 7}).encode(), 400, "temperature"),
    ],
)
def test_bad_input_gets_openai_error(gateway: str, body: bytes, status: int, needle: str) -> None:
    r = httpx.post(f"{gateway}/v1/completions", content=body, headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert needle in err["message"]
    assert "Traceback" not in r.text


def test_models_and_probes(gateway: str) -> None:
    models = httpx.get(f"{gateway}/v1/models", timeout=5).json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    assert httpx.get(f"{gateway}/healthz", timeout=5).status_code == 200
    ready = httpx.get(f"{gateway}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["healthy_workers"]


def test_client_disconnect_mid_stream_frees_the_worker(gateway: str, worker: Proc) -> None:
    req = {"prompt": "a long story", "max_tokens": 1000, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{gateway}/v1/completions", json=req, timeout=30) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in got)
        assert worker_load(worker.address).num_running == 1
    # Leaving the `with` closed the connection; the worker must drop the sequence promptly.
    deadline = time.monotonic() + 10
    load = worker_load(worker.address)
    while time.monotonic() < deadline and (load.num_running or load.num_waiting):
        time.sleep(0.05)
        load = worker_load(worker.address)
    assert (load.num_running, load.num_waiting) == (0, 0)
    assert load.num_free_kv_blocks == load.num_total_kv_blocks


def test_worker_keeps_serving_after_bad_requests(gateway: str) -> None:
    for _ in range(3):
        httpx.post(f"{gateway}/v1/completions", json={"prompt": "x" * 3000}, timeout=30)
    r = httpx.post(f"{gateway}/v1/completions", json={"prompt": "still here", "max_tokens": 3}, timeout=30)
    assert r.status_code == 200


def test_default_max_tokens_is_cut_to_the_context_left(gateway: str) -> None:
    # The tiny model's context is 2048 tokens (auto); the chat default of 256 does not fit
    # after this prompt, so it is cut to what is left. A client's max_tokens is not.
    messages = [{"role": "user", "content": "x" * 1950}]
    r = httpx.post(f"{gateway}/v1/chat/completions", json={"messages": messages, "ignore_eos": True}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] == 2048
    assert body["usage"]["completion_tokens"] < 256
    r = httpx.post(f"{gateway}/v1/chat/completions", json={"messages": messages, "max_tokens": 256}, timeout=30)
    assert r.status_code == 400 and "context length of 2048" in r.json()["error"]["message"]
