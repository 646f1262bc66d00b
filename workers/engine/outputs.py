"""What the engine hands back per request per step (the servicer turns it into a chunk)."""

from __future__ import annotations

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
