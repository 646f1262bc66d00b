"""`laneway batch submit FILE.jsonl --endpoint E` and `laneway batch results ID`.

A thin client of the gateway's OpenAI-compatible Batch API (standard library only, so
the command works wherever Laneway is installed). `--endpoint` is the Laneway endpoint
the lines run on (e.g. nightly-labeling); the OpenAI URL of the batch is read from the
file's first line. An --endpoint starting with "/" is taken as that URL instead, and the
gateway then picks the endpoint (its first bulk-lane endpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

FINAL = {"completed", "failed", "expired", "cancelled"}
POLL_S = 1.0


class GatewayError(Exception):
    pass


class Client:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise GatewayError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise GatewayError(f"cannot reach the gateway at {self.url}: {exc.reason}") from None

    def json(self, method: str, path: str, payload: dict | None = None) -> dict:
        body = None if payload is None else json.dumps(payload).encode()
        return json.loads(self.call(method, path, body, "application/json" if body is not None else None))

    def upload(self, path: Path) -> dict:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'.encode(),
            (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
             "Content-Type: application/jsonl\r\n\r\n").encode(),
            path.read_bytes(), f"\r\n--{boundary}--\r\n".encode(),
        ]
        return json.loads(self.call("POST", "/v1/files", b"".join(parts), f"multipart/form-data; boundary={boundary}"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="batch_command", required=True)
    s = sub.add_parser("submit", help="upload a JSONL file, start a batch, follow it to the end")
    s.add_argument("file", type=Path)
    s.add_argument("--endpoint", required=True, help="Laneway endpoint the lines run on (e.g. nightly-labeling)")
    s.add_argument("--window", default="24h", help="completion window, e.g. 24h or 30m")
    s.add_argument("--no-wait", action="store_true", help="print the batch id and return at once")
    _connection(s)
    s.set_defaults(func=submit)
    r = sub.add_parser("results", help="print a batch's output JSONL")
    r.add_argument("batch_id")
    r.add_argument("--errors", action="store_true", help="print the error file instead")
    _connection(r)
    r.set_defaults(func=results)


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("LANEWAY_URL", "http://127.0.0.1:8000"),
                   help="gateway base URL (default: $LANEWAY_URL or http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=os.environ.get("LANEWAY_API_KEY"),
                   help="API key (default: $LANEWAY_API_KEY)")


def submit(a: argparse.Namespace) -> int:
    client = Client(a.url, a.api_key)
    try:
        url = a.endpoint if a.endpoint.startswith("/") else _url_of_first_line(a.file)
        metadata = None if a.endpoint.startswith("/") else {"laneway_endpoint": a.endpoint}
        uploaded = client.upload(a.file)
        batch = client.json("POST", "/v1/batches", {"input_file_id": uploaded["id"], "endpoint": url,
                                                    "completion_window": a.window, "metadata": metadata})
        print(batch["id"], flush=True)
        if a.no_wait:
            return 0
        while batch["status"] not in FINAL:
            _progress(batch)
            time.sleep(POLL_S)
            batch = client.json("GET", f"/v1/batches/{batch['id']}")
        _progress(batch, end="\n")
    except (GatewayError, OSError, ValueError) as exc:
        print(f"\nlaneway batch: {exc}", file=sys.stderr)
        return 1
    for error in (batch.get("errors") or {}).get("data") or []:
        print(f"  line {error.get('line')}: {error.get('code')}: {error.get('message')}", file=sys.stderr)
    if batch["status"] == "completed":
        print(f"results: laneway batch results {batch['id']}", file=sys.stderr)
    return 0 if batch["status"] == "completed" else 1


def results(a: argparse.Namespace) -> int:
    client = Client(a.url, a.api_key)
    try:
        batch = client.json("GET", f"/v1/batches/{a.batch_id}")
        file_id = batch.get("error_file_id" if a.errors else "output_file_id")
        if batch["status"] not in FINAL:
            print(f"batch {a.batch_id} is {batch['status']}; results come when it ends", file=sys.stderr)
            return 1
        if file_id:
            sys.stdout.write(client.call("GET", f"/v1/files/{file_id}/content").decode())
    except GatewayError as exc:
        print(f"laneway batch: {exc}", file=sys.stderr)
        return 1
    counts = batch["request_counts"]
    if not a.errors and batch.get("error_file_id"):
        print(f"{counts['failed']} line(s) failed; see them with --errors", file=sys.stderr)
    return 0


def _url_of_first_line(path: Path) -> str:
    with path.open() as f:
        for line in f:
            if line.strip():
                url = json.loads(line).get("url")
                if not isinstance(url, str):
                    raise ValueError(f"{path}: the first line has no \"url\"")
                return url
    raise ValueError(f"{path} has no requests")


def _progress(batch: dict, end: str = "") -> None:
    c = batch["request_counts"]
    done = c["completed"] + c["failed"]
    print(f"\r{batch['id']}: {batch['status']:<11} {done}/{c['total']} done, {c['failed']} failed   ",
          end=end, file=sys.stderr, flush=True)
