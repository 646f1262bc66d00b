"""What the engine hands back per request per step (the servicer turns it into a chunk)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    num_preemptions: int
    queue_ms: float


@dataclass(frozen=True)
class RequestOutput:
    seq_id: str
    token_ids: list[int]  # new since the previous output
    text: str  # text delta, never half a UTF-8 character
    finish_reason: str | None = None  # "stop" | "length" | "abort" on the last output
    usage: Usage | None = None  # on the last output only
    logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    # On the output with the first sampled token, when asked: the logprob of each prompt token
    # after the first, given those before it, with its alternatives.
    prompt_logprobs: list[tuple[float, list[tuple[int, float]]]] | None = None
    error: str | None = None  # set when the engine failed this request (e.g. model error): INTERNAL
    invalid_request: str | None = None  # set when the engine refused this request's input: INVALID_ARGUMENT

    @property
    def is_finished(self) -> bool:
        return self.finish_reason is not None


def is_mergeable(out: RequestOutput) -> bool:
    """Error outputs travel alone: they end the call with a status, not a chunk."""
    return out.error is None and out.invalid_request is None


def merge(outputs: Sequence[RequestOutput]) -> RequestOutput:
    """Consecutive outputs of one sequence as one: tokens, text and logprobs concatenated in
    order; the finish reason and usage are the last one's (only the last can carry them)."""
    if not outputs:
        raise ValueError("merge needs at least one output")
    if len(outputs) == 1:
        return outputs[0]
    first, last = outputs[0], outputs[-1]
    if any(o.seq_id != first.seq_id for o in outputs):
        raise ValueError("merge takes outputs of one sequence only")
    if not all(is_mergeable(o) for o in outputs):
        raise ValueError("error outputs are never merged")
    if any(o.is_finished for o in outputs[:-1]):
        raise ValueError("only the last merged output may finish the stream")
    return RequestOutput(
        seq_id=first.seq_id,
        token_ids=[t for o in outputs for t in o.token_ids],
        text="".join(o.text for o in outputs),
        finish_reason=last.finish_reason,
        usage=last.usage,
        logprobs=[lp for o in outputs for lp in o.logprobs],
        prompt_logprobs=next((o.prompt_logprobs for o in outputs if o.prompt_logprobs is not None), None),
    )
