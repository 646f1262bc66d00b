"""OpenAI-compatible request bodies, validated at the HTTP edge (pydantic only here)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.structured_schemas import ResponseFormat, StructuredOutputs
from gateway.tools.schemas import MessageToolCall, Tool, ToolChoice

MAX_TOKENS_CEILING = 1_000_000  # anything above is absurd for any model; the worker checks the real limit
MAX_STOP = 4
# Integer ranges of the gRPC wire (int32, int64): a larger value is the client's error (400),
# not the gateway's (ValueError while building the message). The worker checks the real limits.
INT32_MAX = 2**31 - 1
TokenId = Annotated[int, Field(ge=0, le=INT32_MAX)]


class _Request(BaseModel):
    # OpenAI clients send many optional fields; unknown ones are ignored, not errors.
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1  # one choice per request: n > 1 is refused, not ignored
    user: str | None = None
    ignore_eos: bool = False
    structured_outputs: StructuredOutputs | None = None  # vLLM's extra (gateway/structured_schemas.py)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty strings")
        return v

    @property
    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


class CompletionRequest(_Request):
    prompt: str | list[TokenId]
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: Literal[False] = False

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | list[TokenId]) -> str | list[TokenId]:
        if len(v) == 0:
            raise ValueError("prompt must not be empty")
        return v


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict] | None = None  # absent or null: empty (an assistant message with tool_calls)
    tool_calls: Annotated[list[MessageToolCall], Field(min_length=1)] | None = None  # assistant: calls it made
    tool_call_id: str | None = None  # tool: the call this answers
    name: str | None = None

    @model_validator(mode="after")
    def _calls_are_the_assistants(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not {self.role} ones")
        return self

    def text(self) -> str:
        """Plain text of the message; content parts other than text are refused."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"only text content parts are supported, got type {part.get('type')!r}")
            parts.append(part["text"])
        return "".join(parts)


class ChatCompletionRequest(_Request):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING)] | None = None
    response_format: ResponseFormat | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
