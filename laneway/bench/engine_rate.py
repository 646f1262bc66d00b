"""The in-process engine's batch-1 streaming rate: the ceiling a served single stream is judged against.

The same engine a worker runs (real scheduler, model runner, sampler, detokenizer) over the
same weights, one request at a time, no gRPC and no HTTP: TTFT is the prefill step and the
decode rate is (tokens - 1) / (last token - first token), measured exactly as the served
client measures a stream. Runs as `python -m laneway.bench.engine_rate` in its own process,
so the bench's client process never holds torch's threads while servers run.

`--batch N` (N > 1) measures instead N requests at once, each round: the aggregate tok/s of
the round (all output tokens / the time from adding them to the last token), the in-process
ceiling of a served c=N level; TTFT is then the round's first token.

`--threads-layout` shows why a worker builds its engine on the thread that steps it
(workers/build.py): `main` builds and steps on the main thread, `split` builds on the main
thread and steps on another (two OpenMP teams: what workers did before), `engine-thread`
builds and steps on one other thread (what workers do).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

LAYOUTS = ("main", "split", "engine-thread")


def measure(model_spec: str, *, num_threads: int, prompt_len: int, output_len: int, num_requests: int,
            seed: int = 0, layout: str = "main", batch: int = 1) -> dict:
    """The engine's batch-1 rate (or, with batch > 1, the aggregate rate of `batch` requests at
    once, `num_requests` rounds); `layout` (LAYOUTS) says which threads build and step it."""
    import torch

    from workers.bench.setup import make_engine
    from workers.models.loader import load_model

    def build() -> tuple[Any, int]:
        torch.set_num_threads(num_threads)
        model, config, tokenizer = load_model(model_spec, seed=seed)
        engine = make_engine(model, config, tokenizer, num_tokens=2 * batch * (prompt_len + output_len),
                             max_num_seqs=batch)
        return engine, config.vocab_size

    if layout not in LAYOUTS:
        raise ValueError(f"layout is one of {', '.join(LAYOUTS)}, got {layout!r}")
    if batch < 1:
        raise ValueError(f"batch is at least 1, got {batch}")

    def drive(engine: Any, vocab_size: int) -> dict:
        if batch == 1:
            return _drive(engine, vocab_size, num_threads, prompt_len, output_len, num_requests, seed)
        return _drive_batch(engine, vocab_size, num_threads, prompt_len, output_len, num_requests, seed, batch)

    if layout == "main":
        return drive(*build())
    built = build() if layout == "split" else None
    return _on_new_thread(lambda: drive(*(built or build())))


def _on_new_thread(fn: Callable[[], dict]) -> dict:
    result: list[dict] = []
    thread = threading.Thread(target=lambda: result.append(fn()), name="engine-loop")
    thread.start()
    thread.join()
    if not result:
        raise RuntimeError("the engine thread failed (its traceback is above)")
    return result[0]


def _drive(engine: Any, vocab_size: int, num_threads: int, prompt_len: int, output_len: int, num_requests: int,
           seed: int) -> dict:
    rng = random.Random(seed)
    ttfts, rates = [], []
    for i in range(num_requests + 1):  # the first request warms up (oneDNN primitives, kernel build)
        seq = _request(f"r{i}", rng, vocab_size, prompt_len, output_len)
        engine.add(seq)
        sent = time.perf_counter()
        token_times: list[float] = []
        while engine.has_work():
            for out in engine.step():
                if out.token_ids:
                    token_times.append(time.perf_counter())
        if i == 0:
            continue
        ttfts.append(token_times[0] - sent)
        rates.append((len(token_times) - 1) / (token_times[-1] - token_times[0]))
    return {"num_threads": num_threads, "ttft_s": ttfts, "decode_tok_s": rates,
            "ttft_p50_s": statistics.median(ttfts), "decode_tok_s_p50": statistics.median(rates)}


def _request(name: str, rng: random.Random, vocab_size: int, prompt_len: int, output_len: int) -> Any:
    """A random prompt of ordinary token ids, generating output_len tokens whatever it samples."""
    from workers.engine.sequence import SamplingParams, Sequence

    prompt = [rng.randrange(3, min(vocab_size, 256)) for _ in range(prompt_len)]
    return Sequence(name, prompt, SamplingParams(max_tokens=output_len, ignore_eos=True))


def _drive_batch(engine: Any, vocab_size: int, num_threads: int, prompt_len: int, output_len: int,
                 num_rounds: int, seed: int, batch: int) -> dict:
    rng = random.Random(seed)
    ttfts, rates, counts = [], [], []
    for r in range(num_rounds + 1):  # the first round warms up
        seqs = [_request(f"r{r}-{i}", rng, vocab_size, prompt_len, output_len) for i in range(batch)]
        sent = time.perf_counter()
        for seq in seqs:
            engine.add(seq)
        num_tokens, first = 0, None
        while engine.has_work():
            for out in engine.step():
                if out.token_ids:
                    first = first if first is not None else time.perf_counter()
                    num_tokens += len(out.token_ids)
        if r == 0 or first is None:
            continue
        ttfts.append(first - sent)
        rates.append(num_tokens / (time.perf_counter() - sent))
        counts.append(num_tokens)
    return {"num_threads": num_threads, "batch": batch, "ttft_s": ttfts, "aggregate_tok_s": rates, "tokens": counts,
            "ttft_p50_s": statistics.median(ttfts), "aggregate_tok_s_p50": statistics.median(rates)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m laneway.bench.engine_rate")
    p.add_argument("--model", default="small")
    p.add_argument("--num-threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--requests", type=int, default=3, help="requests (with --batch: rounds of that many)")
    p.add_argument("--batch", type=int, default=1, help="requests at once (aggregate rate); 1: the batch-1 rate")
    p.add_argument("--threads-layout", choices=LAYOUTS, default="main",
                   help="which threads build and step the engine (see the module docstring)")
    a = p.parse_args(argv)
    from workers.omp_policy import apply_wait_policy

    apply_wait_policy(a.num_threads)  # as a worker does: the same engine, the same threads
    result = measure(a.model, num_threads=a.num_threads, prompt_len=a.prompt_len, output_len=a.output_len,
                     num_requests=a.requests, layout=a.threads_layout, batch=a.batch)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
