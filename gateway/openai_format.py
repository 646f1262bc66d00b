"""OpenAI response bodies and stream chunks for completions and chat completions."""

from __future__ import annotations

import json

from gateway.job import Chunk, Job


def usage_body(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def _object(job: Job, chunked: bool) -> str:
    if job.kind == "chat":
        return "chat.completion.chunk" if chunked else "chat.completion"
    return "text_completion"


def _head(job: Job, model: str, chunked: bool) -> dict:
    prefix = "chatcmpl-" if job.kind == "chat" else "cmpl-"
    return {"id": prefix + job.request_id.removeprefix("req-"), "object": _object(job, chunked),
            "created": int(job.created), "model": model}


def _completion_logprobs(lps: list[tuple[str, float, list[tuple[str, float]]]]) -> dict:
    return {"tokens": [t for t, _, _ in lps], "token_logprobs": [lp for _, lp, _ in lps],
            "top_logprobs": [{t: lp for t, lp in top} for _, _, top in lps], "text_offset": []}


def _chat_logprobs(lps: list[tuple[str, float, list[tuple[str, float]]]]) -> dict:
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                         "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in top]}
                        for t, lp, top in lps]}


def full_body(job: Job, model: str, text: str, finish_reason: str | None, last: Chunk,
              logprobs: list[tuple[str, float, list[tuple[str, float]]]]) -> dict:
    body = _head(job, model, chunked=False)
    want_lp = job.sampling.logprobs is not None
    if job.kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "logprobs": _chat_logprobs(logprobs) if want_lp else None, "finish_reason": finish_reason}
    else:
        choice = {"index": 0, "text": text, "logprobs": _completion_logprobs(logprobs) if want_lp else None,
                  "finish_reason": finish_reason}
    body["choices"] = [choice]
    body["usage"] = usage_body(last.prompt_tokens, last.completion_tokens, last.cached_prompt_tokens)
    return body


def stream_event(job: Job, model: str, chunk: Chunk, first: bool) -> str:
    body = _head(job, model, chunked=True)
    want_lp = job.sampling.logprobs is not None and chunk.logprobs
    if job.kind == "chat":
        delta: dict = {"content": chunk.text}
        if first:
            delta["role"] = "assistant"
        choice = {"index": 0, "delta": delta, "logprobs": _chat_logprobs(chunk.logprobs) if want_lp else None,
                  "finish_reason": chunk.finish_reason}
    else:
        choice = {"index": 0, "text": chunk.text,
                  "logprobs": _completion_logprobs(chunk.logprobs) if want_lp else None,
                  "finish_reason": chunk.finish_reason}
    body["choices"] = [choice]
    return sse(body)


def chat_delta_event(job: Job, model: str, delta: dict, finish_reason: str | None,
                     logprobs: list[tuple[str, float, list[tuple[str, float]]]]) -> str:
    """A chat stream event with a delta built by the caller (tool calls: gateway/tools/stream.py)."""
    body = _head(job, model, chunked=True)
    want_lp = job.sampling.logprobs is not None and logprobs
    body["choices"] = [{"index": 0, "delta": delta, "logprobs": _chat_logprobs(logprobs) if want_lp else None,
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

