"""OpenAI response bodies and stream chunks for completions and chat completions.

A request may have several choices (n per prompt, and completions take a list of prompts):
each chunk belongs to one (`Chunk.index`). With `echo` a completion choice's text starts
with its prompt, and with logprobs too its logprobs start with the prompt's tokens (the first
one's logprob is null: nothing comes before it). `text_offset` counts characters of the
choice's text as returned, echo included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gateway.job import Chunk, Job, PromptList

TokenLogprob = tuple[str, float | None, list[tuple[str, float]]]  # (token, logprob, alternatives)


def usage_body(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


@dataclass
class ChoiceState:
    """One choice of an answer, as far as it has come: what its next chunk continues."""

    index: int
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)
    num_chars: int = 0  # characters sent so far: the next token's text_offset
    is_started: bool = False


def _object(job: Job, chunked: bool) -> str:
    if job.kind == "chat":
        return "chat.completion.chunk" if chunked else "chat.completion"
    return "text_completion"


def _head(job: Job, model: str, chunked: bool) -> dict:
    prefix = "chatcmpl-" if job.kind == "chat" else "cmpl-"
    return {"id": prefix + job.request_id.removeprefix("req-"), "object": _object(job, chunked),
            "created": int(job.created), "model": model}


def _completion_logprobs(lps: list[TokenLogprob], first_offset: int) -> dict:
    offsets, offset = [], first_offset
    for token, _, _ in lps:
        offsets.append(offset)
        offset += len(token)
    return {"tokens": [t for t, _, _ in lps], "token_logprobs": [lp for _, lp, _ in lps],
            "top_logprobs": [None if lp is None else {t: a for t, a in top} for _, lp, top in lps],
            "text_offset": offsets}


def _chat_logprobs(lps: list[TokenLogprob]) -> dict:
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                         "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in top]}
                        for t, lp, top in lps]}


def _echo(job: Job, chunk: Chunk) -> str:
    """The prompt text a completion choice starts with (echo): the client's own string for a text
    prompt, the worker's decoding for token ids."""
    if not job.sampling.echo or job.kind == "chat":
        return ""
    prompts = job.prompt.items if isinstance(job.prompt, PromptList) else (job.prompt,)
    prompt = prompts[chunk.index // job.sampling.n] if chunk.index // job.sampling.n < len(prompts) else None
    return prompt if isinstance(prompt, str) else chunk.prompt_text


def advance(job: Job, state: ChoiceState, chunk: Chunk) -> tuple[str, list[TokenLogprob], int]:
    """Take chunk into its choice's state; returns the text and logprobs it adds, and the
    text_offset of their first token."""
    text = chunk.text
    lps: list[TokenLogprob] = list(chunk.logprobs)
    if not state.is_started:
        state.is_started = True
        text = _echo(job, chunk) + text
        lps = list(chunk.prompt_logprobs) + lps
    first_offset = state.num_chars
    state.text += text
    state.num_chars += len(text)
    state.logprobs.extend(lps)
    state.finish_reason = chunk.finish_reason or state.finish_reason
    return text, lps, first_offset


def full_body(job: Job, model: str, choices: list[ChoiceState], last: Chunk) -> dict:
    body = _head(job, model, chunked=False)
    want_lp = job.sampling.logprobs is not None
    rendered = []
    for c in sorted(choices, key=lambda c: c.index):
        if job.kind == "chat":
            rendered.append({"index": c.index, "message": {"role": "assistant", "content": c.text},
                             "logprobs": _chat_logprobs(c.logprobs) if want_lp else None,
                             "finish_reason": c.finish_reason})
        else:
            rendered.append({"index": c.index, "text": c.text,
                             "logprobs": _completion_logprobs(c.logprobs, 0) if want_lp else None,
                             "finish_reason": c.finish_reason})
    body["choices"] = rendered
    body["usage"] = usage_body(last.prompt_tokens, last.completion_tokens, last.cached_prompt_tokens)
    return body


def stream_event(job: Job, model: str, state: ChoiceState, chunk: Chunk) -> str:
    body = _head(job, model, chunked=True)
    is_first = not state.is_started
    text, lps, first_offset = advance(job, state, chunk)
    want_lp = job.sampling.logprobs is not None and lps
    if job.kind == "chat":
        delta: dict = {"content": text}
        if is_first:
            delta["role"] = "assistant"
        choice = {"index": chunk.index, "delta": delta, "logprobs": _chat_logprobs(lps) if want_lp else None,
                  "finish_reason": chunk.finish_reason}
    else:
        choice = {"index": chunk.index, "text": text,
                  "logprobs": _completion_logprobs(lps, first_offset) if want_lp else None,
                  "finish_reason": chunk.finish_reason}
    body["choices"] = [choice]
    return sse(body)


def chat_delta_event(job: Job, model: str, index: int, delta: dict, finish_reason: str | None,
                     logprobs: list[TokenLogprob]) -> str:
    """A chat stream event with a delta built by the caller (tool calls: gateway/tools/stream.py)."""
    body = _head(job, model, chunked=True)
    want_lp = job.sampling.logprobs is not None and logprobs
    body["choices"] = [{"index": index, "delta": delta, "logprobs": _chat_logprobs(logprobs) if want_lp else None,
                        "finish_reason": finish_reason}]
    return sse(body)


def usage_event(job: Job, model: str, last: Chunk) -> str:
    body = _head(job, model, chunked=True)
    body["choices"] = []
    body["usage"] = usage_body(last.prompt_tokens, last.completion_tokens, last.cached_prompt_tokens)
    return sse(body)


def error_event(message: str, code: str) -> str:
    return sse({"error": {"message": message, "type": "server_error", "param": None, "code": code}})


def sse(body: dict) -> str:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


DONE = "data: [DONE]\n\n"
