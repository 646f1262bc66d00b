"""The one module converting gateway domain objects to gRPC messages and back."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeGuard, cast

from gateway.constraint import Constraint
from gateway.job import Chunk, Job, LaneLoad, PromptList, WorkerLoad
from laneway_proto import worker_pb2 as pb

_FINISH = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length", pb.FINISH_REASON_ABORT: "abort"}


def to_request(job: Job, resume_token_ids: Sequence[int] = ()) -> pb.GenerateRequest:
    """`resume_token_ids`: the tokens another worker already streamed for this job, when its
    stream moves to this worker mid-way (the worker continues after them)."""
    s = job.sampling
    sampling = pb.SamplingParams(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p,
                                 top_k=s.top_k, stop=list(s.stop), ignore_eos=s.ignore_eos,
                                 presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
                                 repetition_penalty=s.repetition_penalty, logit_bias=dict(s.logit_bias),
                                 min_tokens=s.min_tokens, echo=s.echo,
                                 max_tokens_is_default=s.max_tokens_is_default,
                                 temperature_is_default=s.temperature_is_default,
                                 top_p_is_default=s.top_p_is_default, top_k_is_default=s.top_k_is_default)
    if s.seed is not None:
        sampling.seed = s.seed
    if s.logprobs is not None:
        sampling.logprobs = s.logprobs
    if s.prompt_logprobs is not None:
        sampling.prompt_logprobs = s.prompt_logprobs
    lane = pb.LaneInfo(name=job.lane.name, priority=job.lane.priority, preemptible=job.lane.preemptible,
                       max_seq_share=job.lane.max_seq_share, max_kv_share=job.lane.max_kv_share,
                       min_share=job.lane.min_share, fair_tenants=job.lane.fair_tenants,
                       stream_interval_ms=job.lane.stream_interval_ms)
    targets = pb.LatencyTargets(ttft_ms=job.targets.ttft_ms or 0.0, tbt_ms=job.targets.tbt_ms or 0.0)
    req = pb.GenerateRequest(request_id=job.request_id, sampling=sampling, lane=lane, endpoint=job.endpoint,
                             batch_id=job.batch_id, targets=targets, n=s.n,
                             deadline_unix_ms=int(job.deadline * 1000) if job.deadline else 0,
                             resume_token_ids=list(resume_token_ids), tenant=job.tenant,
                             tenant_weight=job.tenant_weight)
    if job.kind == "chat":
        if not _is_messages(job.prompt):
            raise TypeError(f"{job.request_id}: a chat job's prompt is a list of messages, got {job.prompt!r:.80}")
        req.chat.messages.extend(_chat_message(m) for m in job.prompt)
        if job.tools is not None:
            req.chat.tools.extend(pb.ToolSpec(name=t.name, description=t.description, parameters_json=t.parameters_json)
                                  for t in job.tools.shown_tools)
    elif isinstance(job.prompt, PromptList):
        req.prompts.items.extend(pb.Prompt(text=p) if isinstance(p, str) else pb.Prompt(token_ids=pb.TokenIds(ids=p))
                                 for p in job.prompt.items)
    elif isinstance(job.prompt, str):
        req.text = job.prompt
    else:
        req.token_ids.ids.extend(cast(list[int], job.prompt))  # intake gives a completion text or token ids
    if job.constraint is not None:
        req.constraint.CopyFrom(_constraint(job.constraint))
    return req


def _chat_message(m: dict) -> pb.ChatMessage:
    return pb.ChatMessage(role=m["role"], content=m["content"],
                          tool_calls=[pb.ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"])
                                      for c in m.get("tool_calls", ())],
                          tool_call_id=m.get("tool_call_id", ""), name=m.get("name", ""))


def _constraint(c: Constraint) -> pb.OutputConstraint:
    out = pb.OutputConstraint(lenient=c.lenient)
    if c.kind == "json_object":
        out.json_object = True
    elif c.kind == "choice":
        out.choice.choices.extend(c.choices)
    else:
        setattr(out, c.kind, c.source)  # json_schema, regex, grammar: the proto's field names
    return out


def _is_messages(prompt: object) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt)


def from_chunk(c: pb.GenerateChunk) -> Chunk:
    has_usage = c.HasField("usage")
    return Chunk(
        token_ids=list(c.token_ids),
        text=c.text,
        finish_reason=_FINISH.get(c.finish_reason),
        prompt_tokens=c.usage.prompt_tokens if has_usage else c.prompt_tokens,
        completion_tokens=c.usage.completion_tokens,
        cached_prompt_tokens=c.usage.cached_prompt_tokens,
        num_preemptions=c.usage.num_preemptions,
        logprobs=[(lp.token, lp.logprob, [(t.token, t.logprob) for t in lp.top]) for lp in c.logprobs],
        has_usage=has_usage,
        index=c.index,
        prompt_text=c.prompt_text,
        # The first prompt token has no logprob (nothing precedes it): None, as OpenAI shows it.
        prompt_logprobs=[(lp.token, lp.logprob if i else None, [(t.token, t.logprob) for t in lp.top])
                         for i, lp in enumerate(c.prompt_logprobs)],
    )


def from_load(r: pb.LoadReport) -> WorkerLoad:
    return WorkerLoad(num_running=r.num_running, num_waiting=r.num_waiting,
                      num_free_kv_blocks=r.num_free_kv_blocks, num_total_kv_blocks=r.num_total_kv_blocks,
                      num_queued_prefill_tokens=r.num_queued_prefill_tokens,
                      max_num_seqs=max(1, r.max_num_seqs), is_draining=r.is_draining,
                      lanes=tuple(_lane_load(lane) for lane in r.lanes),
                      step_time_budget_ms=_finite_ms(r.step_time_budget_ms),
                      num_bulk_slots=max(0, r.num_bulk_slots))


def _lane_load(lane: pb.LaneLoad) -> LaneLoad:
    return LaneLoad(name=lane.name, priority=lane.priority, preemptible=lane.preemptible,
                    num_running=lane.num_running, num_waiting=lane.num_waiting,
                    num_queued_prefill_tokens=lane.num_queued_prefill_tokens,
                    predicted_wait_ms=_finite_ms(lane.predicted_wait_ms))


def _finite_ms(value: float) -> float:
    # The worker reports 0 for "none"; a NaN or negative from a confused cost model is read as
    # none too, so admission and dispatch fall back to their own measures instead of trusting it.
    return value if math.isfinite(value) and value > 0 else 0.0
