"""The engine: one step plans a forward pass, runs it, and turns samples into outputs.

Scheduler and block manager are pure Python; the model runner and sampler hold all torch
work. The engine loop (engine_loop.py) calls `step()` on its own thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workers.engine.detokenizer import IncrementalDetokenizer
from workers.engine.online_cost import OnlineStepCost
from workers.engine.outputs import RequestOutput, Usage
from workers.engine.request_error import InvalidRequest
from workers.engine.runner import Runner
from workers.engine.scheduler import Scheduler
from workers.engine.scheduler_output import PromptLogitSpan, SchedulerOutput
from workers.engine.sequence import SeqStatus, Sequence
from workers.engine.step_shape import EMPTY_SHAPE, StepShape, shape_of
from workers.engine.tokenizer import Tokenizer

if TYPE_CHECKING:  # annotations only: the engine loop stays torch-free
    import torch

    from workers.sampling.result import SampleResult

# (logits (N, V) of the seqs that sample, those N seqs) -> one token id per seq, plus logprobs
SampleFn = Callable[["torch.Tensor", list[Sequence]], "SampleResult"]
# (logits (P, V) of prompt positions, the prompt token each predicts, alternatives per row)
# -> (logprob, top alternatives) per row: workers/sampling/logprobs.py
PromptLogprobsFn = Callable[["torch.Tensor", list[int], list[int]], list[tuple[float, list[tuple[int, float]]]]]


@dataclass(frozen=True)
class StepStats:
    """One engine step that ran the model, for metrics (handed to `Engine.on_step`)."""

    num_seqs: int  # sequences in the forward pass: the batch size
    num_batched_tokens: int
    num_preempted: int
    duration_s: float  # schedule + forward + sample + postprocess
    shape: StepShape = EMPTY_SHAPE
    lane_seconds: dict[str, float] = field(default_factory=dict)  # the step's time, split by lane
    sat_out: dict[str, int] = field(default_factory=dict)  # deferrable seqs with no tokens, by lane
    preempted: dict[str, int] = field(default_factory=dict)  # by the victim's lane
    time_budget_s: float = math.inf  # the scheduler's limit (inf: none; token mode reports inf)
    predicted_s: float | None = None  # the cost model's prediction for this step


class Engine:
    def __init__(self, scheduler: Scheduler, runner: Runner, sample_fn: SampleFn, tokenizer: Tokenizer,
                 prompt_logprobs_fn: PromptLogprobsFn | None = None) -> None:
        self.scheduler = scheduler
        self.runner = runner
        self.sample_fn = sample_fn
        self.tokenizer = tokenizer
        self.prompt_logprobs_fn = prompt_logprobs_fn  # None: requests for prompt logprobs are refused
        self.num_steps = 0
        self.num_preemptions = 0  # since start; read by the metrics endpoint on another thread
        self.last_step_s = 0.0  # wall time of the last step (the engine loop's pacing reads it)
        # Called on the engine thread after each step that ran the model: keep it to a few
        # counter updates (workers/telemetry does), never I/O.
        self.on_step: Callable[[StepStats], None] | None = None

    def add(self, seq: Sequence) -> None:
        """Raises InvalidRequest, queueing nothing, for a request this worker cannot take."""
        if seq.sampling.prompt_logprobs is not None and self.prompt_logprobs_fn is None:
            raise InvalidRequest(f"request {seq.request_id}: this worker does not compute prompt logprobs")
        detok = IncrementalDetokenizer(self.tokenizer, seq.token_ids[: seq.num_prompt_tokens], stop=seq.sampling.stop)
        # A resumed stream (GenerateRequest.resume_token_ids) arrives with output another worker
        # already streamed. Fed one token per step, as that worker fed them, the detokenizer
        # holds back exactly what that worker held (a partial character, a possible stop
        # string start) and releases it later; the text it already sent is not sent again.
        for i, token_id in enumerate(seq.output_token_ids):
            may_stop = i + 1 >= seq.sampling.min_tokens
            if detok.step([token_id], may_stop=may_stop).stop_matched:
                raise InvalidRequest(f"resume tokens complete a stop string at token {i}: that stream had "
                                     "already finished")
        seq.detokenizer = detok
        self.scheduler.add(seq)

    def abort(self, seq_id: str) -> bool:
        return self.scheduler.abort(seq_id)

    def has_work(self) -> bool:
        return self.scheduler.has_unfinished

    def step(self) -> list[RequestOutput]:
        started = time.perf_counter()
        out = self.scheduler.schedule()
        shape = shape_of(out)  # before postprocess moves the chunk bounds
        sampled = self._execute(out)
        outputs = self._postprocess(out, sampled)
        self.last_step_s = time.perf_counter() - started
        self.scheduler.record_gaps(out, self.last_step_s)
        self._report(out, shape, self.last_step_s)
        return outputs

    def _report(self, out: SchedulerOutput, shape: StepShape, duration_s: float) -> None:
        self.num_preemptions += len(out.preempted)
        if out.is_empty:
            return
        cost = self.scheduler.cost
        predicted = cost.step_time(shape) if cost is not None else None
        if isinstance(cost, OnlineStepCost):
            cost.observe(shape, duration_s)
        if self.on_step is not None:
            self.on_step(StepStats(
                num_seqs=len(out.scheduled), num_batched_tokens=out.num_batched_tokens,
                num_preempted=len(out.preempted), duration_s=duration_s, shape=shape,
                lane_seconds=_split_by_lane(out, duration_s), sat_out=_count_lanes(out.sat_out),
                preempted=_count_lanes(out.preempted),
                time_budget_s=out.time_budget if cost is not None else math.inf, predicted_s=predicted))

    def _execute(self, out: SchedulerOutput) -> dict[str, int]:
        if out.is_empty:
            return {}
        now = time.time()
        for s in out.scheduled:
            if s.seq.first_scheduled_time is None:
                s.seq.first_scheduled_time = now
            if s.seq.first_token_time is None:
                s.seq.num_prefill_chunks += 1
        spans = out.prompt_logit_spans()  # before the runner: the rows it appends after the samples
        logits = self.runner.run(out)
        sampling_seqs = [s.seq for s in out.scheduled if s.needs_sample]
        if spans:
            self._record_prompt_logprobs(spans, logits[len(sampling_seqs):])
        if not sampling_seqs:
            return {}
        result = self.sample_fn(logits[: len(sampling_seqs)], sampling_seqs)
        for seq, lp in zip(sampling_seqs, result.logprobs):
            if lp is not None:
                seq.output_logprobs.append(lp)
        self.num_steps += 1
        return {seq.seq_id: tok for seq, tok in zip(sampling_seqs, result.token_ids)}

    def _record_prompt_logprobs(self, spans: list[PromptLogitSpan], logits: torch.Tensor) -> None:
        """logits (P, V): the prompt rows of this step, span after span."""
        assert self.prompt_logprobs_fn is not None, "add() refuses prompt logprobs without a function"
        targets = [span.seq.token_ids[p + 1] for span in spans for p in range(span.start, span.end)]
        ks = [span.seq.sampling.prompt_logprobs or 0 for span in spans for _ in range(span.start, span.end)]
        results = iter(self.prompt_logprobs_fn(logits, targets, ks))
        for span in spans:
            span.seq.prompt_logprobs.extend(next(results) for _ in range(span.start, span.end))

    def _postprocess(self, out: SchedulerOutput, sampled: dict[str, int]) -> list[RequestOutput]:
        outputs = [self._finish_output(seq, []) for seq in out.aborted]
        now = time.time()
        for seq in self.scheduler.postprocess(out, sampled):
            new_ids = [sampled[seq.seq_id]] if seq.seq_id in sampled else []
            if new_ids and seq.first_token_time is None:
                seq.first_token_time = now
            outputs.append(self._output(seq, new_ids))
        return outputs

    def _output(self, seq: Sequence, new_ids: list[int]) -> RequestOutput:
        detok = seq.detokenizer
        assert detok is not None, f"sequence {seq.seq_id} was added without a detokenizer"
        # The eos token ends the text; it is counted but never rendered.
        renderable = [t for t in new_ids if not self._is_eos(seq, t)]
        step = detok.step(renderable, may_stop=seq.may_stop)
        text = step.text_delta
        if step.stop_matched and not seq.status.is_finished:
            self.scheduler.finish(seq, SeqStatus.FINISHED_STOPPED)
        if seq.status.is_finished:
            return self._finish_output(seq, new_ids, text)
        lps = seq.output_logprobs[-len(new_ids):] if new_ids and seq.sampling.logprobs is not None else []
        return RequestOutput(seq.seq_id, new_ids, text, logprobs=lps,
                             prompt_logprobs=_first_prompt_logprobs(seq, new_ids))

    def _finish_output(self, seq: Sequence, new_ids: list[int], text: str = "") -> RequestOutput:
        if seq.finish_time is None:
            seq.finish_time = time.time()
        if seq.detokenizer is not None and seq.status is not SeqStatus.FINISHED_ABORTED:
            text += seq.detokenizer.flush()
            if seq.detokenizer.stop_matched and seq.status is SeqStatus.FINISHED_LENGTH:
                # The last allowed token also completed a stop string: the model stopped, it
                # was not cut off. A stop beats length, as a stop token does in stopping.py.
                seq.status = SeqStatus.FINISHED_STOPPED
        queue_s = (seq.first_scheduled_time or time.time()) - seq.arrival_time
        usage = Usage(
            prompt_tokens=seq.num_prompt_tokens,
            completion_tokens=seq.num_output_tokens,
            cached_prompt_tokens=seq.num_cached_tokens,
            num_preemptions=seq.num_preemptions,
            queue_ms=queue_s * 1000.0,
        )
        lps = seq.output_logprobs[-len(new_ids):] if new_ids and seq.sampling.logprobs is not None else []
        return RequestOutput(seq.seq_id, new_ids, text, finish_reason=seq.status.finish_reason,
                             usage=usage, logprobs=lps, prompt_logprobs=_first_prompt_logprobs(seq, new_ids))

    @staticmethod
    def _is_eos(seq: Sequence, token_id: int) -> bool:
        return (token_id == seq.eos_token_id and not seq.sampling.ignore_eos) or token_id in seq.sampling.stop_token_ids


def _first_prompt_logprobs(seq: Sequence, new_ids: list[int]) -> list[tuple[float, list[tuple[int, float]]]] | None:
    """The prompt's logprobs, on the output that carries the first sampled token only."""
    if seq.sampling.prompt_logprobs is None or not new_ids or seq.num_output_tokens != len(new_ids):
        return None
    return list(seq.prompt_logprobs)


def _split_by_lane(out: SchedulerOutput, duration_s: float) -> dict[str, float]:
    """The step's time shared among lanes by the tokens each computed (a prefill chunk of
    n tokens costs about n decodes)."""
    tokens: dict[str, int] = {}
    for s in out.scheduled:
        tokens[s.seq.lane.name] = tokens.get(s.seq.lane.name, 0) + s.num_new_tokens
    total = sum(tokens.values())
    return {name: duration_s * n / total for name, n in tokens.items()} if total else {}


def _count_lanes(seqs: Seq[Sequence]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seq in seqs:
        counts[seq.lane.name] = counts.get(seq.lane.name, 0) + 1
    return counts


def drain(engine: Engine, seqs: Seq[Sequence], max_steps: int = 100_000) -> dict[str, list[RequestOutput]]:
    """Run the engine until idle and collect outputs per sequence (offline use and tests)."""
    for seq in seqs:
        engine.add(seq)
    collected: dict[str, list[RequestOutput]] = {s.seq_id: [] for s in seqs}
    for _ in range(max_steps):
        if not engine.has_work():
            return collected
        for o in engine.step():
            collected.setdefault(o.seq_id, []).append(o)
    raise AssertionError(f"engine still busy after {max_steps} steps")
