"""The one module converting gRPC messages to engine objects and back (worker side).

Bad input raises InvalidRequest (workers/engine/request_error.py) naming the value: from
here for what the model limits decide, from the domain types built here for the rest.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from laneway_proto import worker_pb2 as pb
from workers.engine.outputs import RequestOutput
from workers.engine.engine_loop import LoadSnapshot
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import LanePolicy, LatencyTargets, SamplingParams, Sequence
from workers.engine.tokenizer import Tokenizer
from workers.grammar.constraint import OutputConstraint

if TYPE_CHECKING:  # the grammar engine is the worker image's; the CLI loads this module anywhere
    from workers.grammar.compiler import GrammarCompiler
    from workers.grammar.matcher import GrammarMatcher

_FINISH = {"stop": pb.FINISH_REASON_STOP, "length": pb.FINISH_REASON_LENGTH, "abort": pb.FINISH_REASON_ABORT}


@dataclass(frozen=True)
class ModelLimits:
    max_model_len: int
    vocab_size: int
    eos_token_ids: tuple[int, ...]  # the first is the sequence's eos; the rest stop like stop tokens

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None


def to_sequence(req: pb.GenerateRequest, tokenizer: Tokenizer, limits: ModelLimits,
                grammars: GrammarCompiler | None = None) -> Sequence:
    """grammars compiles the request's output constraint; a request with one is refused
    when the worker has none. Compiling can take long for huge schemas: call this off the
    event loop when req has a constraint (has_constraint)."""
    prompt_ids = _prompt_ids(req, tokenizer)
    sampling = _sampling(req.sampling, limits)
    extra_eos = tuple(t for t in limits.eos_token_ids[1:] if t not in sampling.stop_token_ids)
    if extra_eos and not sampling.ignore_eos:
        sampling = dataclasses.replace(sampling, stop_token_ids=sampling.stop_token_ids + extra_eos)
    if not prompt_ids:
        raise InvalidRequest("prompt is empty")
    if len(prompt_ids) >= limits.max_model_len:
        raise InvalidRequest(f"prompt has {len(prompt_ids)} tokens; this model's context length is "
                             f"{limits.max_model_len} (prompt must be shorter to leave room for output)")
    bad = [t for t in prompt_ids if not 0 <= t < limits.vocab_size]
    if bad:
        raise InvalidRequest(f"token id {bad[0]} is outside the vocabulary [0, {limits.vocab_size})")
    room = limits.max_model_len - len(prompt_ids)
    if sampling.max_tokens > room:
        raise InvalidRequest(f"max_tokens={sampling.max_tokens} plus the prompt's {len(prompt_ids)} tokens "
                             f"exceeds this model's context length of {limits.max_model_len}")
    lane = req.lane
    return Sequence(
        seq_id=req.request_id or uuid.uuid4().hex,
        token_ids=prompt_ids,
        sampling=sampling,
        lane=LanePolicy(  # shares outside (0, 1] raise InvalidRequest
            name=lane.name or "default",
            priority=lane.priority,
            preemptible=lane.preemptible,
            max_seq_share=lane.max_seq_share or 1.0,  # proto3 default 0: unset
            max_kv_share=lane.max_kv_share or 1.0,
            min_share=lane.min_share,
        ),
        deadline=req.deadline_unix_ms / 1000.0 if req.deadline_unix_ms else None,
        eos_token_id=limits.eos_token_id,
        targets=_targets(req.targets),
        grammar=_grammar(req, grammars),
    )


def has_constraint(req: pb.GenerateRequest) -> bool:
    return req.HasField("constraint") and req.constraint.WhichOneof("kind") is not None


def _grammar(req: pb.GenerateRequest, grammars: GrammarCompiler | None) -> GrammarMatcher | None:
    if not has_constraint(req):
        return None
    if grammars is None:
        raise InvalidRequest("this worker does not serve structured outputs (no grammar engine for its tokenizer)")
    c = req.constraint
    kind = c.WhichOneof("kind")
    if kind == "choice":
        constraint = OutputConstraint("choice", choices=tuple(c.choice.choices))
    elif kind == "json_object":
        constraint = OutputConstraint("json_object", lenient=c.lenient)
    else:
        constraint = OutputConstraint(kind, source=getattr(c, kind), lenient=c.lenient)
    return grammars.compile(constraint)


def _targets(t: pb.LatencyTargets) -> LatencyTargets:
    # 0 means unset (proto3); LatencyTargets checks the rest (negative, NaN).
    return LatencyTargets(ttft_s=t.ttft_ms / 1000.0 if t.ttft_ms else None,
                          tbt_s=t.tbt_ms / 1000.0 if t.tbt_ms else None)


def _prompt_ids(req: pb.GenerateRequest, tokenizer: Tokenizer) -> list[int]:
    which = req.WhichOneof("prompt")
    if which == "text":
        return tokenizer.encode(req.text)
    if which == "token_ids":
        return list(req.token_ids.ids)
    if which == "chat":
        if not req.chat.messages:
            raise InvalidRequest("messages is empty")
        messages = [_chat_message(m) for m in req.chat.messages]
        tools = [_tool(t) for t in req.chat.tools] or None
        try:
            rendered = tokenizer.apply_chat_template(messages, tools=tools)
        except ValueError as exc:  # ChatTemplateError: the template refused these messages
            raise InvalidRequest(f"chat template: {exc}") from None
        # HF templates usually render BOS themselves; add it only when the template did not.
        ids = tokenizer.encode(rendered, add_special_tokens=False)
        bos = tokenizer.bos_token_id
        return ids if bos is None or ids[:1] == [bos] else [bos, *ids]
    raise InvalidRequest("request has no prompt (text, token_ids or chat)")


def _chat_message(m: pb.ChatMessage) -> dict[str, Any]:
    """A message as Hugging Face chat templates read it (transformers' conventions)."""
    message: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        # Templates index arguments as a mapping (Llama 3.1 iterates it, Qwen dumps it), as
        # transformers documents; JSON that is not an object stays the client's text.
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": _json_object_or_text(c.arguments)}}
                                 for c in m.tool_calls]
    if m.tool_call_id:
        message["tool_call_id"] = m.tool_call_id
    if m.name:
        message["name"] = m.name
    return message


def _tool(t: pb.ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": t.name}
    if t.description:
        function["description"] = t.description
    if t.parameters_json:
        try:
            function["parameters"] = json.loads(t.parameters_json)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"tool {t.name!r}: parameters are not valid JSON: {exc}") from None
    return {"type": "function", "function": function}


def _json_object_or_text(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, dict) else text


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
    )
    bad_stop = [t for t in sampling.stop_token_ids if not 0 <= t < limits.vocab_size]
    if bad_stop:
        raise InvalidRequest(f"stop token id {bad_stop[0]} is outside the vocabulary")
    return sampling


def to_chunk(out: RequestOutput, tokenizer: Tokenizer) -> pb.GenerateChunk:
    chunk = pb.GenerateChunk(token_ids=out.token_ids, text=out.text,
                             finish_reason=_FINISH.get(out.finish_reason or "", pb.FINISH_REASON_UNSPECIFIED))
    for token_id, (logprob, top) in zip(out.token_ids, out.logprobs):
        chunk.logprobs.append(pb.TokenLogprob(
            token_id=token_id, token=tokenizer.decode([token_id]), logprob=logprob,
            top=[pb.TopLogprob(token_id=t, token=tokenizer.decode([t]), logprob=lp) for t, lp in top]))
    if out.usage is not None:
        u = out.usage
        chunk.usage.CopyFrom(pb.Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                                      cached_prompt_tokens=u.cached_prompt_tokens,
                                      num_preemptions=u.num_preemptions, queue_ms=u.queue_ms))
    return chunk


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
