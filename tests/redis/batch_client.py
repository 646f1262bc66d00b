"""Small httpx helpers for the Batch API (the official openai client is used in the process tests)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

FINAL = {"completed", "failed", "expired", "cancelled"}


def request_line(custom_id: str, body: dict, url: str = "/v1/completions") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def completion_lines(n: int, max_tokens: int = 3, prefix: str = "prompt") -> str:
    return "\n".join(request_line(f"req-{i}", {"prompt": f"{prefix} {i}", "max_tokens": max_tokens})
                     for i in range(n)) + "\n"


async def upload(client: httpx.AsyncClient, content: str, headers: dict) -> str:
    r = await client.post("/v1/files", files={"file": ("input.jsonl", content.encode())}, data={"purpose": "batch"},
                          headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def create(client: httpx.AsyncClient, file_id: str, headers: dict, **fields) -> dict:
    body = {"input_file_id": file_id, "endpoint": "/v1/completions", "completion_window": "24h", **fields}
    r = await client.post("/v1/batches", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def wait_for(client: httpx.AsyncClient, batch_id: str, headers: dict, statuses: set[str] = FINAL,
                   timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = (await client.get(f"/v1/batches/{batch_id}", headers=headers)).json()
        if batch["status"] in statuses:
            return batch
        assert time.monotonic() < deadline, f"batch stuck in {batch['status']}: {batch}"
        await asyncio.sleep(0.05)


async def lines_of(client: httpx.AsyncClient, file_id: str | None, headers: dict) -> list[dict]:
    if file_id is None:
        return []
    r = await client.get(f"/v1/files/{file_id}/content", headers=headers)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]
