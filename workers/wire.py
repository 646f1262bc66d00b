"""The one module converting gRPC messages to engine objects and back (worker side).

Bad input raises InvalidRequest (workers/engine/request_error.py) naming the value: from
here for what the model limits decide, from the domain types built here for the rest.

Values the gateway marks as defaults (`*_is_default` in SamplingParams) are the model's to
decide: a default max_tokens is clamped to the context the prompt leaves (a client's
max_tokens that does not fit is refused), and a default temperature, top_p or top_k is
replaced by the model's generation_config.json value where it has one (precedence in
workers/models/generation_config.py).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import DecodeError

from laneway_proto import worker_pb2 as pb
from laneway_proto.error_codes import CHAT_TEMPLATE_ERROR, CONTEXT_LENGTH_EXCEEDED, TOKEN_OUT_OF_VOCABULARY
from workers.engine.engine_loop import LoadSnapshot
from workers.engine.outputs import RequestOutput, Usage
from workers.engine.request_error import InvalidRequest
from workers.engine.sequence import LanePolicy, LatencyTargets, SamplingParams, Sequence
from workers.engine.tokenizer import Tokenizer
from workers.grammar.constraint import OutputConstraint
from workers.models.config import ModelConfig
from workers.models.generation_config import SamplingDefaults

if TYPE_CHECKING:  # the grammar engine is the worker image's; the CLI loads this module anywhere
    from workers.grammar.compiler import GrammarCompiler
    from workers.grammar.matcher import GrammarMatcher

_T = TypeVar("_T", int, float)
_FINISH = {"stop": pb.FINISH_REASON_STOP, "length": pb.FINISH_REASON_LENGTH, "abort": pb.FINISH_REASON_ABORT}
MAX_CHOICES = 128  # sequences one request may start (prompts x n), as OpenAI's n caps at 128


@dataclass(frozen=True)
class ModelLimits:
    max_model_len: int
    vocab_size: int
    eos_token_ids: tuple[int, ...]  # the first is the sequence's eos; the rest stop like stop tokens
    sampling_defaults: SamplingDefaults = SamplingDefaults()  # the model's, for values the client left unset

    @classmethod
    def of(cls, model: ModelConfig, max_model_len: int) -> ModelLimits:
        """What requests are checked against when serving `model` with this context length."""
        return cls(max_model_len=max_model_len, vocab_size=model.vocab_size, eos_token_ids=model.eos_token_ids,
                   sampling_defaults=model.sampling_defaults)

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None


@dataclass(frozen=True)
class UndecodableRequest:
    """Generate request bytes that are not a GenerateRequest (only a hand-made client sends them)."""

    reason: str


def decode_generate_request(data: bytes) -> pb.GenerateRequest | UndecodableRequest:
    """Generate's request deserializer (workers/servicer.py): bytes that do not decode are bad
    input the servicer answers with INVALID_ARGUMENT, where gRPC's own would say UNKNOWN."""
    try:
        return pb.GenerateRequest.FromString(data)
    except DecodeError as exc:
        return UndecodableRequest(str(exc))


def decode_session_request(data: bytes) -> pb.SessionRequest | UndecodableRequest:
    """Session's request deserializer: a message that does not decode ends that call with
    INVALID_ARGUMENT (workers/session.py), where gRPC's own would say UNKNOWN."""
    try:
        return pb.SessionRequest.FromString(data)
    except DecodeError as exc:
        return UndecodableRequest(str(exc))


def to_sequences(req: pb.GenerateRequest, tokenizer: Tokenizer, limits: ModelLimits,
                 grammars: GrammarCompiler | None = None) -> list[Sequence]:
    """One Sequence per choice: n samples of each prompt, in choice-index order (prompt index * n +
    sample index). A single choice keeps the request id as its seq_id; several get "ID#index".
    The samples of a prompt after the first name it as prompt_leader (they share its blocks).

    grammars compiles the request's output constraint (once; each choice gets its own matcher);
    a request with one is refused when the worker has none. Compiling can take long for huge
    schemas: call this off the event loop when req has a constraint (has_constraint)."""
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
        fair_tenants=lane.fair_tenants,
    )
    request_id = req.request_id or uuid.uuid4().hex
    single = len(prompts) * num_samples == 1
    resumed = list(req.resume_token_ids)
    if resumed and not single:
        # Resume tokens are one stream's output: a request of several choices is never resumed.
        raise InvalidRequest(f"resume_token_ids with {len(prompts)} prompt(s) x n={num_samples} choices: only a "
                             "request of one choice can be resumed")
    grammar = _grammar(req, grammars)
    if grammar is not None:
        _advance_grammar(grammar, resumed)
    seqs: list[Sequence] = []
    for prompt_index, prompt_ids in enumerate(prompts):
        prompt_sampling = _check_prompt(prompt_ids, sampling, limits, req.sampling.max_tokens_is_default)
        _check_resumed(resumed, prompt_sampling, limits)
        if resumed:  # the first worker already sent the echoed prompt and its logprobs
            prompt_sampling = dataclasses.replace(prompt_sampling, echo=False, prompt_logprobs=None)
        leader: Sequence | None = None
        for sample_index in range(num_samples):
            index = prompt_index * num_samples + sample_index
            seq = Sequence(
                seq_id=request_id if single else f"{request_id}#{index}",
                # A resumed stream's output so far is output here too: counted against max_tokens,
                # and it keeps the seeded sampler's step numbers (workers/sampling/seeding.py).
                token_ids=list(prompt_ids) + resumed,
                num_prompt_tokens=len(prompt_ids),
                sampling=_sample_params(prompt_sampling, sample_index, num_samples),
                lane=lane_policy,
                deadline=req.deadline_unix_ms / 1000.0 if req.deadline_unix_ms else None,
                eos_token_id=limits.eos_token_id,
                targets=_targets(req.targets),
                request_id=request_id,
                choice_index=index,
                prompt_leader=leader,
                grammar=None if grammar is None else grammar if single else grammar.fork(),
                tenant=req.tenant,
                tenant_weight=req.tenant_weight or 1.0,  # proto3 default 0: unset
            )
            leader = leader or seq
            seqs.append(seq)
    return seqs


MAX_STREAM_INTERVAL_MS = 60_000.0  # a longer pacing gap than any stream should see


def stream_interval_s(req: pb.GenerateRequest) -> float:
    """The lane's pacing of this stream (LaneInfo.stream_interval_ms) in seconds; 0: none."""
    ms = req.lane.stream_interval_ms
    if not 0 <= ms <= MAX_STREAM_INTERVAL_MS:  # also NaN
        raise InvalidRequest(f"lane.stream_interval_ms is {ms}; expected 0 to {MAX_STREAM_INTERVAL_MS:.0f}")
    return ms / 1000.0


def to_sequence(req: pb.GenerateRequest, tokenizer: Tokenizer, limits: ModelLimits,
                grammars: GrammarCompiler | None = None) -> Sequence:
    """The one Sequence of a request of one choice (one prompt, n = 1); InvalidRequest otherwise."""
    seqs = to_sequences(req, tokenizer, limits, grammars)
    if len(seqs) != 1:
        raise InvalidRequest(f"expected a request of one choice, got {len(seqs)}")
    return seqs[0]


def _sample_params(sampling: SamplingParams, sample_index: int, num_samples: int) -> SamplingParams:
    """Sample i of n > 1 draws from seed + i: the same seed for all would give n copies of one
    answer (vLLM does the same)."""
    if sampling.seed is None or num_samples == 1:
        return sampling
    return dataclasses.replace(sampling, seed=sampling.seed + sample_index)


def _check_prompt(prompt_ids: list[int], sampling: SamplingParams, limits: ModelLimits,
                  max_tokens_is_default: bool) -> SamplingParams:
    """Refuses a prompt this model cannot take; returns the sampling for it (a default
    max_tokens clamped to the context the prompt leaves)."""
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
        if not max_tokens_is_default:
            raise InvalidRequest(f"max_tokens={sampling.max_tokens} plus the prompt's {len(prompt_ids)} tokens "
                                 f"exceeds this model's context length of {limits.max_model_len}",
                                 CONTEXT_LENGTH_EXCEEDED)
        # The client did not ask for that many: generate what the context leaves room for.
        sampling = dataclasses.replace(sampling, max_tokens=room)
    return sampling


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


def _advance_grammar(grammar: GrammarMatcher, resumed: list[int]) -> None:
    """A resumed stream's tokens were sampled under the same grammar on another worker: the
    matcher walks them so the rest continues the same structured output."""
    for i, t in enumerate(resumed):
        if grammar.is_finished:
            raise InvalidRequest(f"resume token {i} (id {t}) follows a complete structured output: "
                                 "that stream had already finished")
        if not grammar.accept(t):
            raise InvalidRequest(f"resume token {i} (id {t}) does not fit the request's output constraint")
    if grammar.is_finished:
        raise InvalidRequest("the resume tokens already complete the structured output: "
                             "that stream had already finished")


def _check_resumed(resumed: list[int], sampling: SamplingParams, limits: ModelLimits) -> None:
    """Tokens another worker already streamed must be tokens a live stream could have sent:
    inside the vocabulary, fewer than max_tokens, none that would have ended it."""
    if not resumed:
        return
    bad = [t for t in resumed if not 0 <= t < limits.vocab_size]
    if bad:
        raise InvalidRequest(f"resume token id {bad[0]} is outside the vocabulary [0, {limits.vocab_size})")
    if len(resumed) >= sampling.max_tokens:
        raise InvalidRequest(f"{len(resumed)} resume tokens leave nothing to generate under "
                             f"max_tokens={sampling.max_tokens}: that stream had already finished")
    enders = set(sampling.stop_token_ids)
    if limits.eos_token_id is not None and not sampling.ignore_eos:
        enders.add(limits.eos_token_id)
    ended = [i for i, t in enumerate(resumed) if t in enders]
    if ended:
        raise InvalidRequest(f"resume token {ended[0]} (id {resumed[ended[0]]}) is an end-of-sequence or stop "
                             "token: that stream had already finished")


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
        messages = [_chat_message(m) for m in req.chat.messages]
        tools = [_tool(t) for t in req.chat.tools] or None
        try:
            rendered = tokenizer.apply_chat_template(messages, tools=tools)
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
    model = limits.sampling_defaults
    sampling = SamplingParams(
        max_tokens=sp.max_tokens,
        temperature=_unless_default(sp.temperature, sp.temperature_is_default, model.temperature),
        top_p=_unless_default(sp.top_p or 1.0, sp.top_p_is_default, model.top_p),  # proto3 default 0: unset
        top_k=_unless_default(sp.top_k, sp.top_k_is_default, model.top_k),
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


def _unless_default(value: _T, is_default: bool, model_value: _T | None) -> _T:
    return model_value if is_default and model_value is not None else value


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
