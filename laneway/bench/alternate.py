"""`laneway bench alternate`: levels of c streams taking turns between servers already running.

For A/B comparisons on a shared machine whose speed drifts by 10-30% within minutes: each
round runs one level (c streams, closed loop) on every path, in an order that rotates from
round to round, so the drift hits every path alike; what is compared is each path's ratio
to the first path, round by round. Paths are Laneway workers over direct gRPC and gateways
(or any OpenAI-compatible server) over HTTP, started by you: e.g. two gateways on one worker,
one with `--worker-calls per-stream`, or one with another `--policy`. Give a path's process
id and its CPU time per output token over each level is read too (/proc/PID/stat), a figure
that noise moves far less than wall time. "gap p95" is over every gap between arrivals of
output in the level's streams (an SSE event or a gRPC message, a token or several): what an
endpoint's TBT target is about.

    laneway bench alternate --model small --concurrency 32 --rounds 6 \\
        --path direct=grpc://127.0.0.1:50051 --path gw=http://127.0.0.1:8000@4242
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from laneway.bench.serve_drive import MakeSend, Shape, close_sender, grpc_path, hf_encoder, http_path, run_level
from laneway.bench.serve_overhead import process_cpu_s, turn_order
from laneway.bench.serve_stats import LevelResult, summarize_level


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # grpc://HOST:PORT or http://HOST:PORT
    pid: int | None = None  # the serving process, for its CPU time


def parse_path(text: str) -> Target:
    """NAME=grpc://HOST:PORT[@PID] or NAME=http://HOST:PORT[@PID]."""
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--path {text!r}: expected NAME=URL[@PID]")
    url, _, pid = rest.partition("@")
    if not url.startswith(("grpc://", "http://")):
        raise ValueError(f"--path {text!r}: the URL must start with grpc:// or http://")
    if pid and not pid.isdigit():
        raise ValueError(f"--path {text!r}: the process id after @ must be a number")
    return Target(name, url, int(pid) if pid else None)


@dataclass(frozen=True)
class Level:
    result: LevelResult
    cpu_s_per_token: float | None


def summarize(levels: dict[str, list[Level]]) -> str:
    """Per path: medians over rounds, and its ratio to the first path's level in the same round."""
    names = list(levels)
    base = levels[names[0]]
    lines = ["| path | aggregate tok/s | vs first, per round | vs first, median | TTFT p50 / p95 ms | gap p95 ms | "
             "CPU us/token |", "|---|---:|---|---:|---:|---:|---:|"]
    for name in names:
        runs = levels[name]
        ratios = [run.result.aggregate_tok_s / b.result.aggregate_tok_s for run, b in zip(runs, base, strict=True)]
        ttft50 = statistics.median(r.result.ttft_p50_s or 0.0 for r in runs) * 1e3
        ttft95 = statistics.median(r.result.ttft_p95_s or 0.0 for r in runs) * 1e3
        cpu = [r.cpu_s_per_token for r in runs if r.cpu_s_per_token is not None]
        gaps = [r.result.gap_p95_s for r in runs if r.result.gap_p95_s is not None]
        gap = f"{statistics.median(gaps) * 1e3:.0f}" if gaps else "–"
        lines.append(f"| {name} | {statistics.median(r.result.aggregate_tok_s for r in runs):.1f} | "
                     + " / ".join(f"{x:.3f}" for x in ratios) + f" | {statistics.median(ratios):.3f} | "
                     f"{ttft50:.0f} / {ttft95:.0f} | {gap} | " + (f"{statistics.median(cpu) * 1e6:.0f}" if cpu else "–")
                     + " |")
    return "\n".join(lines)


def _path(target: Target, shape: Shape, model: str) -> MakeSend:
    address = target.url.split("://", 1)[1]
    return grpc_path(address, shape) if target.url.startswith("grpc://") else http_path(target.url, model, shape)


async def _run(paths: list[Target], shape: Shape, model: str, concurrency: int, num_requests: int,
               rounds: int) -> dict[str, list[Level]]:
    senders, closers = {}, []
    for path in paths:
        send, close = _path(path, shape, model)()
        senders[path.name] = send
        closers.append(close)
        await send(10_000)  # warm-up: connections, first-use paths
    by_name = {p.name: p for p in paths}
    levels: dict[str, list[Level]] = {p.name: [] for p in paths}
    try:
        for r in range(rounds):
            for name in turn_order(list(by_name), r):
                pid = by_name[name].pid
                cpu_before = process_cpu_s(pid) if pid is not None else None
                samples, failed, wall = await run_level(senders[name], concurrency, num_requests)
                result = summarize_level(name, concurrency, samples, failed, wall)
                tokens = sum(s.output_tokens for s in samples)
                cpu = ((process_cpu_s(pid) - cpu_before) / tokens  # type: ignore[arg-type]
                       if cpu_before is not None and tokens else None)
                levels[name].append(Level(result, cpu))
                print(f"round {r + 1}/{rounds} {name}: {result.aggregate_tok_s:.1f} tok/s, TTFT p95 "
                      f"{(result.ttft_p95_s or 0) * 1e3:.0f} ms, gap p95 {(result.gap_p95_s or 0) * 1e3:.0f} ms"
                      + (f", {cpu * 1e6:.0f} us CPU/token" if cpu else "")
                      + (f", failed {failed}" if failed else ""), flush=True)
    finally:
        for close in closers:
            await close_sender(close)
    return levels


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", action="append", required=True, metavar="NAME=URL[@PID]",
                   help="a server to take turns: grpc://HOST:PORT (a worker) or http://HOST:PORT (a gateway or "
                        "any OpenAI-compatible server); @PID: read that process's CPU time. The first is the "
                        "baseline of the ratios. Repeat for each path")
    p.add_argument("--model", default="small",
                   help="the served weights' HF directory, or a preset (exported to read its tokenizer): prompts "
                        "go to workers as token ids")
    p.add_argument("--served-model-name", default="laneway", help="the HTTP requests' model field")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--requests", type=int, default=None, help="per level (default: one per stream)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=128)


def main(args: argparse.Namespace) -> int:
    from laneway.bench.hf_export import hf_dir_for

    try:
        paths = [parse_path(text) for text in args.path]
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if len({p.name for p in paths}) != len(paths):
        raise SystemExit("--path names must differ")
    hf_dir = hf_dir_for(args.model, Path(tempfile.mkdtemp(prefix="laneway-alternate-")))
    shape = Shape(args.prompt_len, args.output_len, encode=hf_encoder(str(hf_dir)))
    levels = asyncio.run(_run(paths, shape, args.served_model_name, args.concurrency,
                              args.requests or args.concurrency, args.rounds))
    print(f"\nc={args.concurrency}, {args.requests or args.concurrency} requests a level, {args.rounds} rounds, "
          "the order rotating each round; medians of rounds:\n")
    print(summarize(levels))
    return 0
