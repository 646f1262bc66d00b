"""Where a decode step's time goes: torch profiler over engine steps at one batch size.

The profiler adds a few microseconds to every op, so small ops look costlier than they
are; the shares of the big ones (matmuls, attention) are what this is for.
"""

from __future__ import annotations

import random

from workers.bench.decode_curve import DecodeRun
from workers.engine.tokenizer import Tokenizer
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM


def profile_decode(model: LlamaForCausalLM, config: ModelConfig, tokenizer: Tokenizer, *, batch_size: int, context: int,
                   num_steps: int = 10, row_limit: int = 12, seed: int = 0) -> str:
    """The profiler's table of ops by self CPU time over `num_steps` pure decode steps."""
    from torch.profiler import ProfilerActivity, profile

    run = DecodeRun(model, config, tokenizer, batch_size, context, num_steps, random.Random(seed))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(num_steps):
            run.step()
    run.finish()
    step_ms = sum(run.step_s) / len(run.step_s) * 1e3
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)
    return f"batch {batch_size}, {num_steps} decode steps, {step_ms:.1f} ms per step under the profiler\n{table}"
