"""Runs one scheduled step through the model over the paged KV pool it owns.

The scheduler decides which tokens of which sequences to compute ([start, end) per seq);
the runner flattens them into one batch, writes their K/V into the pool and returns the
logits of the sequences whose chunk reaches their last known token. It never changes a
Sequence: advancing num_computed_tokens is the engine's postprocess step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workers.engine.config import CacheRuntime
from workers.engine.runner import RunnerStats
from workers.engine.scheduler_output import SchedulerOutput
from workers.engine.sequence import Sequence
from workers.kernels.cpu_decode_attention import decode_kernel
from workers.kernels.kv_cache import allocate_kv_cache
from workers.kernels.metadata import AttentionMetadata
from workers.models.config import ModelConfig
from workers.models.llama import LlamaForCausalLM


@dataclass(frozen=True)
class StepInputs:
    input_ids: torch.Tensor  # (T,) int64
    positions: torch.Tensor  # (T,) int64
    md: AttentionMetadata
    sample_indices: torch.Tensor  # (N,) int64: the row of the flattened batch to sample per seq
    # (P,) int64: rows of the flattened batch whose logits give prompt logprobs (usually empty)
    prompt_indices: torch.Tensor | None = None


def sampled_seqs(out: SchedulerOutput) -> list[Sequence]:
    """The sequence of each row of `ModelRunner.run(out)`, in order.

    Call it before advancing num_computed_tokens: needs_sample is computed from it."""
    return [s.seq for s in out.scheduled if s.needs_sample]


class ModelRunner:
    """The engine's Runner (workers/engine/runner.py) for a real model."""

    def __init__(
        self,
        model: LlamaForCausalLM,
        model_config: ModelConfig,
        cache_runtime: CacheRuntime,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        assert dtype == getattr(torch, model_config.dtype), (
            f"KV cache dtype {dtype} must match the model's {model_config.dtype} (write_kv copies as is)"
        )
        self.model = model
        model.pack_weights()  # the weights are final from here on
        self.model_config = model_config
        self.block_size = cache_runtime.block_size
        self.device = torch.device(device)
        if self.device.type == "cpu":
            decode_kernel()  # built (or found in the disk cache) now, not on the first request
        self.kv_caches = allocate_kv_cache(
            model_config, cache_runtime.num_blocks, cache_runtime.block_size, dtype, device
        )  # one (k_cache, v_cache) per layer
        self.stats = RunnerStats()

    @torch.inference_mode()
    def run(self, out: SchedulerOutput) -> torch.Tensor:
        """Float32 logits (N + P, V): the sample rows, then the prompt-logprob rows (runner.py)."""
        step = self.prepare(out)
        hidden = self.model(step.input_ids, step.positions, self.kv_caches, step.md)  # (T, hidden)
        rows = step.sample_indices
        if step.prompt_indices is not None:
            rows = torch.cat([rows, step.prompt_indices])  # (N + P,)
        logits = self.model.compute_logits(hidden[rows])  # (N + P, V)
        self.stats.num_steps += 1
        self.stats.num_computed_tokens += step.md.num_tokens
        self.stats.num_sampled += logits.shape[0]
        return logits

    def prepare(self, out: SchedulerOutput) -> StepInputs:
        """Flatten the scheduled chunks; per-seq Python work only, per-token work in torch."""
        assert not out.is_empty, "model runner called with nothing scheduled"
        block_size = self.block_size
        input_ids: list[int] = []
        starts, q_lens, seq_lens, tables, sample_seq_rows = [], [], [], [], []
        for row, s in enumerate(out.scheduled):
            seq, start, end = s.seq, s.start, s.end
            assert start < end <= seq.num_tokens, f"seq {seq.seq_id}: chunk [{start}, {end}) of {seq.num_tokens}"
            num_blocks = -(-end // block_size)
            assert len(seq.block_table) >= num_blocks, (
                f"seq {seq.seq_id}: block table has {len(seq.block_table)} blocks, step needs {num_blocks}"
            )
            input_ids.extend(seq.token_ids[start:end])
            starts.append(start)
            q_lens.append(end - start)
            seq_lens.append(end)
            tables.append(seq.block_table[:num_blocks])
            if s.needs_sample:
                sample_seq_rows.append(row)

        max_blocks = max(len(t) for t in tables)
        block_tables = torch.tensor([t + [0] * (max_blocks - len(t)) for t in tables], dtype=torch.int32)
        if len(input_ids) == len(q_lens):
            # A decode step (one token a sequence): the same tensors from the lists directly,
            # a few Python ops a sequence where the general path dispatches a dozen torch ops.
            query_start_loc = torch.arange(len(q_lens) + 1, dtype=torch.int64)
            positions = torch.tensor(starts, dtype=torch.int64)  # (T,)
            slot_mapping = torch.tensor([table[p // block_size] * block_size + p % block_size
                                         for table, p in zip(tables, starts)], dtype=torch.int64)
            sample_indices = torch.tensor(sample_seq_rows, dtype=torch.int64)  # token row = seq row
        else:
            q_lens_t = torch.tensor(q_lens)
            query_start_loc = torch.zeros(len(q_lens) + 1, dtype=torch.int64)
            torch.cumsum(q_lens_t, 0, out=query_start_loc[1:])
            token_seq = torch.repeat_interleave(torch.arange(len(q_lens)), q_lens_t)  # (T,) seq row per token
            # Position of token t = its seq's start + its offset within the seq's chunk.
            offsets = torch.tensor(starts) - query_start_loc[:-1]  # (B,)
            positions = torch.arange(len(input_ids)) + offsets[token_seq]  # (T,)
            slot_mapping = (block_tables[token_seq, positions // block_size].long() * block_size
                            + positions % block_size)
            sample_indices = query_start_loc[1:][torch.tensor(sample_seq_rows, dtype=torch.int64)] - 1  # (N,)
        spans = out.prompt_logit_spans()
        prompt_indices = None
        if spans:  # position p of row r sits at query_start_loc[r] + (p - starts[r])
            prompt_indices = torch.tensor([int(query_start_loc[span.row]) + p - starts[span.row]
                                           for span in spans for p in range(span.start, span.end)])  # (P,)

        device = self.device
        md = AttentionMetadata(
            slot_mapping=slot_mapping.to(device),
            query_start_loc=query_start_loc.to(device, torch.int32),
            seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=device),
            block_tables=block_tables.to(device),
            query_lens_list=tuple(q_lens),
            seq_lens_list=tuple(seq_lens),
            block_size=block_size,
        )
        return StepInputs(
            input_ids=torch.tensor(input_ids, dtype=torch.int64, device=device),
            positions=positions.to(device),
            md=md,
            sample_indices=sample_indices.to(device),
            prompt_indices=prompt_indices.to(device) if prompt_indices is not None else None,
        )
