"""`laneway bench tenants`, batch part: a small batch submitted while a huge one runs.

Each run gets a fresh Redis (laneway/redis_server.py, its own data directory and port), one
worker, and one or two gateways sharing that Redis (each gateway runs a batch runner with
`--batch-concurrency` slots). The noisy tenant submits the big batch (`--big-lines` lines
of long outputs) to the first gateway; `--small-after` seconds later the quiet tenant
submits the small batch to the last gateway. Both batches' request counts are polled every
`--poll` seconds until the small batch is answered or `--batch-window` seconds have passed;
then both are cancelled, so the run is bounded however big the big batch is.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from laneway.batch_cli import Client, GatewayError
from laneway.bench.tenants_lane import BENCH_POLICIES, NOISY_KEY, QUIET_KEY
from laneway.bench.tenants_report import BatchOutcome, Sample, batch_outcome
from laneway.procs import Proc, start_gateway, start_worker
from laneway.redis_server import RedisServer

URL = "/v1/chat/completions"
BULK_ENDPOINT = "labeling"  # the bench policies' endpoint on the bulk lane
POLICY = "tenants-fair.yaml"


def write_batch_file(path: Path, tag: str, num_lines: int, prompt_tokens: int, output_tokens: int) -> Path:
    """Lines whose prompts each open with their own tag, so none is served from another's
    prefix cache; ignore_eos makes every line generate exactly output_tokens."""
    filler = "label this ticket for the weekly report. " * (prompt_tokens // 16 + 1)
    with path.open("w") as f:
        for i in range(num_lines):
            body = {"messages": [{"role": "user", "content": f"#{tag}-{i:05d} {filler}"[:prompt_tokens]}],
                    "max_tokens": output_tokens, "ignore_eos": True, "temperature": 0}
            f.write(json.dumps({"custom_id": f"{tag}-{i}", "method": "POST", "url": URL, "body": body}) + "\n")
    return path


def submit(client: Client, path: Path) -> str:
    uploaded = client.upload(path)
    batch = client.json("POST", "/v1/batches", {"input_file_id": uploaded["id"], "endpoint": URL,
                                                "completion_window": "24h",
                                                "metadata": {"laneway_endpoint": BULK_ENDPOINT}})
    return str(batch["id"])


def answered(client: Client, batch_id: str) -> int:
    counts = client.json("GET", f"/v1/batches/{batch_id}")["request_counts"]
    return int(counts["completed"]) + int(counts["failed"])


def run_batches(num_gateways: int, args: argparse.Namespace, tmp: Path) -> BatchOutcome:
    run_dir = tmp / f"batches-{num_gateways}gw"
    run_dir.mkdir(parents=True, exist_ok=True)
    big_file = write_batch_file(run_dir / "big.jsonl", f"big{num_gateways}", args.big_lines,
                                args.batch_prompt_tokens, args.batch_output_tokens)
    small_file = write_batch_file(run_dir / "small.jsonl", f"small{num_gateways}", args.small_lines,
                                  args.batch_prompt_tokens, args.batch_output_tokens)
    redis = RedisServer(run_dir / "redis").start()
    procs: list[Proc] = []
    try:
        worker = start_worker(run_dir, "--max-num-seqs", str(args.max_num_seqs), "--max-num-batched-tokens",
                              str(args.max_num_batched_tokens), model=args.model, name="worker",
                              kv_cache_memory=args.kv_cache_memory, num_threads=args.num_threads)
        procs.append(worker)
        for i in range(num_gateways):
            procs.append(start_gateway(run_dir, [worker], "--policy", str(BENCH_POLICIES / POLICY), "--redis-url",
                                       redis.url, "--batch-concurrency", str(args.batch_concurrency),
                                       name=f"gateway{i}"))
        gateways = procs[1:]
        big_client = Client(f"http://127.0.0.1:{gateways[0].port}", NOISY_KEY)
        small_client = Client(f"http://127.0.0.1:{gateways[-1].port}", QUIET_KEY)
        return _measure(big_client, small_client, big_file, small_file, args)
    finally:
        for proc in reversed(procs):
            proc.stop()
        redis.stop()


def _measure(big_client: Client, small_client: Client, big_file: Path, small_file: Path,
             args: argparse.Namespace) -> BatchOutcome:
    big_id = submit(big_client, big_file)
    t0 = time.perf_counter()
    small_id: str | None = None
    small_submitted_s = 0.0
    samples: list[Sample] = []
    try:
        while (now := time.perf_counter() - t0) < args.batch_window:
            if small_id is None and now >= args.small_after:
                small_id = submit(small_client, small_file)
                small_submitted_s = time.perf_counter() - t0
            at = time.perf_counter() - t0
            big = answered(big_client, big_id)
            small = answered(small_client, small_id) if small_id is not None else None
            samples.append(Sample(at, big, small))
            if small is not None and small >= args.small_lines:
                break
            time.sleep(args.poll)
    finally:
        for client, batch_id in ((big_client, big_id), (small_client, small_id)):
            if batch_id is not None:
                try:
                    client.json("POST", f"/v1/batches/{batch_id}/cancel")
                except GatewayError:  # already final (the small one completed): nothing to stop
                    pass
    return batch_outcome(samples, small_submitted_s, args.small_lines)
