"""The one module converting gRPC messages to engine objects and back (worker side).

Bad input raises InvalidRequest (workers/engine/request_error.py) naming the value: from
here for what the model limits decide, from the domain types built here for the rest.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

from laneway_proto import worker_pb2 as pb
from laneway_proto.error_codes import CHAT_TEMPLATE_ERROR, CONTEXT_LENGTH_EXCEEDED, TOKEN_OUT_OF_VOCABULARY
from workers.engine.outputs import RequestOutput, Usage
from workers.engine.engine_loop import LoadSnapshot
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import LanePolicy, LatencyTargets, SamplingParams, Sequence
from workers.engine.tokenizer import Tokenizer

_FINISH = {"stop": pb.FINISH_REASON_STOP, "length": pb.FINISH_REASON_LENGTH, "abort": pb.FINISH_REASON_ABORT}
MAX_CHOICES = 128  # sequences one request may start (prompts x n), as OpenAI's n caps at 128


@dataclass(frozen=True)
class ModelLimits:
    max_model_len: int
    vocab_size: int
    eos_token_ids: tuple[int, ...]  # the first is the sequence's eos; the rest stop like stop tokens

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None


def to_sequences(req: pb.GenerateRequest, tokenizer: Tokenizer, limits: ModelLimits) -> list[Sequence]:
    """One Sequence per choice: n samples of each prompt, in choice-index order (prompt index * n +
    sample index). A single choice keeps the request id as its seq_id; several get "ID#index".
    The samples of a prompt after the first name it as prompt_leader (they share its blocks)."""
    num_samples = req.n or 1  # proto3 default 0: unset
    prompts = _prompts_ids(req, tokenizer)
    if not 1 <= num_samples <= MAX_CHOICES or len(prompts) * num_samples > MAX_CHOICES:
        raise InvalidRequest(f"{len(prompts)} prompt(s) x n={num_samples} choices; at most {MAX_CHOICES} "
                             "choices per request")
    sampling = _sampling(req.sampling, limits)
    extra_eos = tuple(t for t in limits.eos_token_ids[1:] if t not in sampling.stop_token_ids)
    if extra_eos and not sampling.ignore_eos:
        sampling = dataclasses.replace(sampling, stop_token_ids=sampling.stop_token_ids + extra_eos)
    lane = req.lane
    lane_policy = LanePolicy(  # shares outside (0, 1] raise InvalidRequest
        name=lane.name or "default",
        priority=lane.priority,
        preemptible=lane.preemptible,
        max_seq_share=lane.max_seq_share or 1.0,  # proto3 default 0: unset
        max_kv_share=lane.max_kv_share or 1.0,
        min_share=lane.min_share,
    )
    request_id = req.request_id or uuid.uuid4().hex
    single = len(prompts) * num_samples == 1
    seqs: list[Sequence] = []
    for prompt_index, prompt_ids in enumerate(prompts):
        _check_prompt(prompt_ids, sampling, limits)
        leader: Sequence | None = None
        for sample_index in range(num_samples):
            index = prompt_index * num_samples + sample_index
            seq = Sequence(
                seq_id=request_id if single else f"{request_id}#{index}",
                token_ids=list(prompt_ids),
                sampling=_sample_params(sampling, sample_index, num_samples),
                lane=lane_policy,
                deadline=req.deadline_unix_ms / 1000.0 if req.deadline_unix_ms else None,
                eos_token_id=limits.eos_token_id,
                targets=_targets(req.targets),
                request_id=request_id,
                choice_index=index,
                prompt_leader=leader,
            )
            leader = leader or seq
            seqs.append(seq)
    return seqs


def _sample_params(sampling: SamplingParams, sample_index: int, num_samples: int) -> SamplingParams:
    """Sample i of n > 1 draws from seed + i: the same seed for all would give n copies of one
    answer (vLLM does the same)."""
    if sampling.seed is None or num_samples == 1:
        return sampling
    return dataclasses.replace(sampling, seed=sampling.seed + sample_index)


def _check_prompt(prompt_ids: list[int], sampling: SamplingParams, limits: ModelLimits) -> None:
    if not prompt_ids:
        raise InvalidRequest("prompt is empty")
    if len(prompt_ids) >= limits.max_model_len:
        raise InvalidRequest(f"prompt has {len(prompt_ids)} tokens; this model's context length is "
                             f"{limits.max_model_len} (prompt must be shorter to leave room for output)",
                             CONTEXT_LENGTH_EXCEEDED)
    bad = [t for t in prompt_ids if not 0 <= t < limits.vocab_size]
    if bad:
        raise InvalidRequest(f"token id {bad[0]} is outside the vocabulary [0, {limits.vocab_size})",
                             TOKEN_OUT_OF_VOCABULARY)
    room = limits.max_model_len - len(prompt_ids)
    if sampling.max_tokens > room:
        raise InvalidRequest(f"max_tokens={sampling.max_tokens} plus the prompt's {len(prompt_ids)} tokens "
                             f"exceeds this model's context length of {limits.max_model_len}", CONTEXT_LENGTH_EXCEEDED)


def _targets(t: pb.LatencyTargets) -> LatencyTargets:
    # 0 means unset (proto3); LatencyTargets checks the rest (negative, NaN).
    return LatencyTargets(ttft_s=t.ttft_ms / 1000.0 if t.ttft_ms else None,
                          tbt_s=t.tbt_ms / 1000.0 if t.tbt_ms else None)


def _prompts_ids(req: pb.GenerateRequest, tokenizer: Tokenizer) -> list[list[int]]:
    which = req.WhichOneof("prompt")
    if which == "prompts":
        if not req.prompts.items:
            raise InvalidRequest("prompt list is empty")
        return [_one_prompt_ids(p.WhichOneof("kind"), p.text, p.token_ids, tokenizer) for p in req.prompts.items]
    if which == "chat":
        if not req.chat.messages:
            raise InvalidRequest("messages is empty")
        messages = [{"role": m.role, "content": m.content} for m in req.chat.messages]
        try:
            rendered = tokenizer.apply_chat_template(messages)
        except ValueError as exc:  # ChatTemplateError: the template refused these messages
            raise InvalidRequest(f"chat template: {exc}", CHAT_TEMPLATE_ERROR) from None
        # HF templates usually render BOS themselves; add it only when the template did not.
        ids = tokenizer.encode(rendered, add_special_tokens=False)
        bos = tokenizer.bos_token_id
        return [ids if bos is None or ids[:1] == [bos] else [bos, *ids]]
    return [_one_prompt_ids(which, req.text, req.token_ids, tokenizer)]


def _one_prompt_ids(which: str | None, text: str, token_ids: pb.TokenIds, tokenizer: Tokenizer) -> list[int]:
    if which == "text":
        return tokenizer.encode(text)
    if which == "token_ids":
        return list(token_ids.ids)
    raise InvalidRequest("request has no prompt (text, token_ids, prompts or chat)")


def _sampling(sp: pb.SamplingParams, limits: ModelLimits) -> SamplingParams:
    """Proto defaults to domain values; SamplingParams checks the ranges (InvalidRequest)."""
    sampling = SamplingParams(
        max_tokens=sp.max_tokens,
        temperature=sp.temperature,
        top_p=sp.top_p or 1.0,  # proto3 default 0: unset
        top_k=sp.top_k,
        seed=sp.seed if sp.HasField("seed") else None,
        stop=tuple(s for s in sp.stop if s),
        stop_token_ids=tuple(sp.stop_token_ids),
        ignore_eos=sp.ignore_eos,
        logprobs=sp.logprobs if sp.HasField("logprobs") else None,
        presence_penalty=sp.presence_penalty,
        frequency_penalty=sp.frequency_penalty,
        repetition_penalty=sp.repetition_penalty or 1.0,  # proto3 default 0: unset
        logit_bias=tuple(sorted(sp.logit_bias.items())),
        min_tokens=sp.min_tokens,
        prompt_logprobs=sp.prompt_logprobs if sp.HasField("prompt_logprobs") else None,
        echo=sp.echo,
    )
    bad_stop = [t for t in sampling.stop_token_ids if not 0 <= t < limits.vocab_size]
    if bad_stop:
        raise InvalidRequest(f"stop token id {bad_stop[0]} is outside the vocabulary", TOKEN_OUT_OF_VOCABULARY)
    bad_bias = [t for t, _ in sampling.logit_bias if not 0 <= t < limits.vocab_size]
    if bad_bias:
        raise InvalidRequest(f"logit_bias token id {bad_bias[0]} is outside the vocabulary [0, {limits.vocab_size})",
                             TOKEN_OUT_OF_VOCABULARY)
    return sampling


def to_chunk(out: RequestOutput, tokenizer: Tokenizer, seq: Sequence | None = None, *, is_first: bool = False,
             usage: Usage | None = None) -> pb.GenerateChunk:
    """One chunk of seq's choice. `is_first`: its first chunk, which carries the prompt text
    and prompt logprobs when asked. `usage`: the request's total, on the stream's last chunk
    (None there: out.usage; elsewhere: none)."""
    chunk = pb.GenerateChunk(token_ids=out.token_ids, text=out.text,
                             finish_reason=_FINISH.get(out.finish_reason or "", pb.FINISH_REASON_UNSPECIFIED),
                             index=seq.choice_index if seq is not None else 0)
    for token_id, (logprob, top) in zip(out.token_ids, out.logprobs):
        chunk.logprobs.append(_token_logprob(token_id, logprob, top, tokenizer))
    if is_first and seq is not None:
        prompt_ids = seq.token_ids[: seq.num_prompt_tokens]
        if seq.sampling.echo:
            chunk.prompt_text = tokenizer.decode(prompt_ids)
        if out.prompt_logprobs is not None:
            chunk.prompt_logprobs.append(_token_logprob(prompt_ids[0], 0.0, [], tokenizer))
            chunk.prompt_logprobs.extend(_token_logprob(t, lp, top, tokenizer)
                                         for t, (lp, top) in zip(prompt_ids[1:], out.prompt_logprobs))
    u = usage if usage is not None else out.usage
    if u is not None:
        chunk.usage.CopyFrom(pb.Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                                      cached_prompt_tokens=u.cached_prompt_tokens,
                                      num_preemptions=u.num_preemptions, queue_ms=u.queue_ms))
    return chunk


def total_usage(usages: list[tuple[Sequence, Usage]]) -> Usage:
    """A request's usage from its choices': each prompt counted once (its samples share it),
    completion tokens and preemptions summed, the longest queue."""
    prompts = [u for seq, u in usages if seq.prompt_leader is None]
    return Usage(prompt_tokens=sum(u.prompt_tokens for u in prompts),
                 completion_tokens=sum(u.completion_tokens for _, u in usages),
                 cached_prompt_tokens=sum(u.cached_prompt_tokens for u in prompts),
                 num_preemptions=sum(u.num_preemptions for _, u in usages),
                 queue_ms=max(u.queue_ms for _, u in usages))


def _token_logprob(token_id: int, logprob: float, top: list[tuple[int, float]], tokenizer: Tokenizer
                   ) -> pb.TokenLogprob:
    return pb.TokenLogprob(token_id=token_id, token=tokenizer.decode([token_id]), logprob=logprob,
                           top=[pb.TopLogprob(token_id=t, token=tokenizer.decode([t]), logprob=lp) for t, lp in top])


def to_load_report(snap: LoadSnapshot, max_num_seqs: int, is_draining: bool) -> pb.LoadReport:
    budget_ms = snap.step_time_budget_s * 1000.0
    return pb.LoadReport(
        num_running=snap.num_running,
        num_waiting=snap.num_waiting,
        num_free_kv_blocks=snap.num_free_kv_blocks,
        num_total_kv_blocks=snap.num_total_kv_blocks,
        num_queued_prefill_tokens=snap.num_queued_prefill_tokens,
        max_num_seqs=max_num_seqs,
        is_draining=is_draining,
        lanes=[pb.LaneLoad(name=lane.name, priority=lane.priority, preemptible=lane.preemptible,
                           num_running=lane.num_running, num_waiting=lane.num_waiting,
                           num_queued_prefill_tokens=lane.num_queued_prefill_tokens,
                           predicted_wait_ms=lane.predicted_wait_s * 1000.0) for lane in snap.lanes],
        step_time_budget_ms=0.0 if budget_ms == float("inf") else budget_ms,
        num_bulk_slots=snap.num_bulk_slots,
    )
