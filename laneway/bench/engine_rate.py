"""The in-process engine's batch-1 streaming rate: the ceiling a served single stream is judged against.

The same engine a worker runs (real scheduler, model runner, sampler, detokenizer) over the
same weights, one request at a time, no gRPC and no HTTP: TTFT is the prefill step and the
decode rate is (tokens - 1) / (last token - first token), measured exactly as the served
client measures a stream. Runs as `python -m laneway.bench.engine_rate` in its own process,
so the bench's client process never holds torch's threads while servers run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time


def measure(model_spec: str, *, num_threads: int, prompt_len: int, output_len: int, num_requests: int,
            seed: int = 0) -> dict:
    import torch

    from workers.bench.setup import make_engine
    from workers.engine.sequence import SamplingParams, Sequence
    from workers.models.loader import load_model

    torch.set_num_threads(num_threads)
    model, config, tokenizer = load_model(model_spec, seed=seed)
    engine = make_engine(model, config, tokenizer, num_tokens=2 * (prompt_len + output_len), max_num_seqs=1)
    rng = random.Random(seed)
    ttfts, rates = [], []
    for i in range(num_requests + 1):  # the first request warms up (oneDNN primitives, kernel build)
        prompt = [rng.randrange(3, min(config.vocab_size, 256)) for _ in range(prompt_len)]
        seq = Sequence(f"r{i}", prompt, SamplingParams(max_tokens=output_len, ignore_eos=True))
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m laneway.bench.engine_rate")
    p.add_argument("--model", default="small")
    p.add_argument("--num-threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--requests", type=int, default=3)
    a = p.parse_args(argv)
    from workers.omp_policy import apply_wait_policy

    apply_wait_policy(a.num_threads)  # as a worker does: the same engine, the same threads
    result = measure(a.model, num_threads=a.num_threads, prompt_len=a.prompt_len, output_len=a.output_len,
                     num_requests=a.requests)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
