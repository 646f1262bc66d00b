"""Decode step time against batch size, through the real engine step.

For each batch size B, B sequences with `context`-token prompts are prefilled, then the
engine runs pure decode steps (schedule, forward, sample, postprocess): B tokens per
step. A step must stream every weight once plus each sequence's K/V, so

    MBU = (weight bytes + KV bytes read) / step time / measured bandwidth

climbs almost linearly with B while weights dominate, then bends as per-sequence K/V and
attention compute take over (seeds 000/003).
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass

from workers.bench.setup import kv_bytes_per_token, make_engine, weight_bytes
from workers.bench.timed_model import TimedModel
from workers.engine.sequence import SamplingParams, Sequence
from workers.engine.tokenizer import Tokenizer
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM


@dataclass(frozen=True)
class DecodePoint:
    batch_size: int
    mean_context: float  # tokens of K/V each sequence attends to, averaged over measured steps
    step_ms: float  # median engine.step(), all B sequences decoding
    forward_ms: float  # median model forward + logits inside those steps
    tokens_per_s: float  # aggregate: B / step time
    bytes_per_step: int  # weights + K/V read

    def mbu(self, bandwidth_gbps: float) -> float:
        return self.bytes_per_step / (self.step_ms / 1e3) / (bandwidth_gbps * 1e9)


def measure_decode_curve(model: LlamaForCausalLM, config: ModelConfig, tokenizer: Tokenizer, *, batch_sizes: list[int],
                         context: int, num_steps: int, seed: int = 0) -> list[DecodePoint]:
    """One engine per batch size, all prefilled first; then the measured steps go round
    robin (one step of each batch size in turn, `num_steps` rounds), so a burst of load
    from another process, or a slow drift, lands on every batch size alike."""
    rng = random.Random(seed)
    runs = [DecodeRun(model, config, tokenizer, b, context, num_steps, rng) for b in batch_sizes]
    for _ in range(num_steps):
        for run in runs:
            run.step()
    for run in runs:
        run.finish()
    dtype = next(model.parameters()).dtype
    weights, kv_per_token = weight_bytes(model), kv_bytes_per_token(config, dtype)
    points = []
    for run in runs:
        b = run.batch_size
        step = statistics.median(run.step_s)
        mean_context = statistics.fmean(run.contexts)
        points.append(DecodePoint(
            batch_size=b, mean_context=mean_context, step_ms=step * 1e3,
            forward_ms=statistics.median(run.timed.seconds[run.first_measured:]) * 1e3, tokens_per_s=b / step,
            bytes_per_step=weights + round(b * mean_context * kv_per_token),
        ))
    return points


class DecodeRun:
    """B sequences with `context`-token prompts in their own engine, prefilled and warmed up."""

    WARMUP = 3

    def __init__(self, model: LlamaForCausalLM, config: ModelConfig, tokenizer: Tokenizer, batch_size: int,
                 context: int, num_steps: int, rng: random.Random) -> None:
        self.batch_size = batch_size
        # Early sequences decode while later ones prefill (chunked prefill under the token
        # budget), so leave room for those extra tokens as well.
        max_tokens = self.WARMUP + num_steps + context + 1
        self.engine = make_engine(model, config, tokenizer, num_tokens=batch_size * (2 * context + max_tokens),
                                  max_num_seqs=batch_size)
        self.timed = TimedModel(model)
        # make_engine builds a real ModelRunner (the Runner protocol does not promise a model).
        self.engine.runner.model = self.timed  # type: ignore[attr-defined]
        vocab = min(config.vocab_size, 256)
        self.seqs = [
            Sequence(f"b{batch_size}-{i}", [rng.randrange(vocab) for _ in range(context)],
                     SamplingParams(max_tokens=max_tokens, ignore_eos=True))
            for i in range(batch_size)
        ]
        for seq in self.seqs:
            self.engine.add(seq)
        while any(seq.num_output_tokens == 0 for seq in self.seqs):  # until every prompt is prefilled
            self.engine.step()
        for _ in range(self.WARMUP):
            self.engine.step()
        self.first_measured = len(self.timed.seconds)
        self.step_s: list[float] = []
        self.contexts: list[float] = []  # mean K/V length read per measured step

    def step(self) -> None:
        tokens_before = self.engine.runner.stats.num_computed_tokens
        self.contexts.append(statistics.fmean(seq.num_tokens for seq in self.seqs))
        start = time.perf_counter()
        self.engine.step()
        self.step_s.append(time.perf_counter() - start)
        assert self.engine.runner.stats.num_computed_tokens - tokens_before == self.batch_size, "not a pure decode step"

    def finish(self) -> None:
        """Abort every sequence, freeing the engine's KV pool."""
        for seq in self.seqs:
            self.engine.abort(seq.seq_id)
        self.engine.step()
        assert not self.engine.has_work(), "aborted sequences still hold the engine"
