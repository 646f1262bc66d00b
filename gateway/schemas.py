"""OpenAI-compatible request bodies, validated at the HTTP edge (pydantic only here).

Unknown fields are refused with a 400 naming them, as OpenAI's API does: a field this
gateway ignored could change what the client expects to get. Accepted are OpenAI's fields
that Laneway serves, the ones that cannot change the output (`user`, `metadata`, ...), and
vLLM's extras it supports (`top_k`, `repetition_penalty`, `min_tokens`, `ignore_eos`).
OpenAI fields known to change the output that Laneway does not serve get their own message.
The JSON Schema of these models is /openapi.json's (gateway/routes/openapi.py): what it
allows, the gateway takes, except for the rules listed in openapi.LIMIT_CODES.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.structured_schemas import ResponseFormat, StructuredOutputs
from gateway.tools.schemas import MessageToolCall, Tool, ToolChoice

MAX_TOKENS_CEILING = 1_000_000  # anything above is absurd for any model; the worker checks the real limit
MAX_STOP = 4
MAX_CHOICES = 128  # choices per request (prompts x n), OpenAI's limit on n
MAX_LOGPROBS = 20
# Integer ranges of the gRPC wire (int32, int64): a larger value is the client's error (400),
# not the gateway's (ValueError while building the message). The worker checks the real limits.
INT32_MAX = 2**31 - 1


def _integral(value: object) -> object:
    # JSON has numbers, not ints and floats: 16.0 is the integer 16 to JSON Schema, so it is to us.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# The validator goes after the bounds: before them, pydantic writes "ge"/"le" into the schema.
AsInt = BeforeValidator(_integral)  # strict otherwise: no strings, no booleans
TokenId = Annotated[int, Field(ge=0, le=INT32_MAX), AsInt]
# logit_bias keys are token ids written as JSON object keys; 9 digits stay inside int32.
TokenIdKey = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
Text = Annotated[str, Field(min_length=1)]
LOGIT_BIAS_LIMIT = 100.0
# Spelled out for the schema: pydantic leaves keys outside the pattern allowed there.
LogitBias = Annotated[dict[TokenIdKey, Annotated[float, Field(ge=-LOGIT_BIAS_LIMIT, le=LOGIT_BIAS_LIMIT)]],
                      WithJsonSchema({"type": "object", "additionalProperties": False, "patternProperties": {
                          "^[0-9]{1,9}$": {"type": "number", "minimum": -LOGIT_BIAS_LIMIT,
                                           "maximum": LOGIT_BIAS_LIMIT}}})]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]

# OpenAI fields that would change the output and that this gateway does not serve: refused
# by name (gateway/intake.py) before the models see them.
UNSUPPORTED = {
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "reasoning_effort": "this model has no reasoning-effort setting",
    "web_search_options": "web search is not supported",
    "verbosity": "this model has no verbosity setting",
}


# strict: a value of the wrong JSON type is refused (0 is no boolean, "16" no integer), as the
# schema says; lax coercion would accept what /openapi.json forbids.
class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    include_usage: bool | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING), AsInt] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1), AsInt] | None = None
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES), AsInt] = Field(
        1, description=f"Choices per prompt; the samples of a prompt share its KV cache. At most {MAX_CHOICES} "
                       "choices per request in all (prompts x n).")
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = Field(
        None, description="Token id -> a value added to its logit. Ids outside the model's vocabulary get a 400.")
    # Accepted, and no effect on the output.
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    # vLLM's extras.
    top_k: Annotated[int, Field(ge=0, le=INT32_MAX), AsInt] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = Field(
        None, description="vLLM's: tokens of the prompt or the output have positive logits divided by it, "
                          "negative ones multiplied; 1 is off.")
    min_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_CEILING), AsInt] | None = Field(
        None, description="vLLM's: no end-of-sequence token, stop token or stop string ends the output before "
                          "this many tokens; at most max_tokens.")
    ignore_eos: bool = False
    structured_outputs: StructuredOutputs | None = None  # vLLM's extra (gateway/structured_schemas.py)

    @property
    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def logit_bias_pairs(self) -> tuple[tuple[int, float], ...]:
        return tuple(sorted((int(k), v) for k, v in (self.logit_bias or {}).items()))


TokenPrompt = Annotated[list[TokenId], Field(min_length=1)]


class CompletionRequest(_Request):
    prompt: Text | TokenPrompt | Annotated[list[Text], Field(min_length=1, max_length=MAX_CHOICES)] | Annotated[
        list[TokenPrompt], Field(min_length=1, max_length=MAX_CHOICES)] = Field(
        description="A string, a list of token ids, or a list of either: one choice per prompt (times n).")
    logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS), AsInt] | None = None
    echo: bool = Field(False, description="Return the prompt before the completion; with logprobs, the "
                                          "prompt tokens' logprobs too (the first one's is null).")
    best_of: Annotated[int, Field(ge=1, le=MAX_CHOICES), AsInt] | None = Field(
        None, description="Only best_of = n (or unset) is served: ranking more candidates than it returns is "
                          "not supported.")
    suffix: None = Field(None, description="Fill-in-the-middle: no model served here supports it, so only null.")

    @field_validator("suffix", mode="before")
    @classmethod
    def _suffix(cls, v: object) -> None:
        if v is not None:
            raise ValueError("suffix (fill-in-the-middle) is not supported by the model served here")
        return None

    @property
    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list of prompts: a single one is a list of one."""
        if isinstance(self.prompt, str) or isinstance(self.prompt[0], int):
            return [self.prompt]
        return list(self.prompt)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    # Other fields of a message are ignored: SDKs send an earlier assistant message back as
    # they got it (refusal, annotations, audio: null), and none of those changes the prompt.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[TextPart] | None = None  # absent or null: empty (an assistant message with tool_calls)
    tool_calls: Annotated[list[MessageToolCall], Field(min_length=1)] | None = None  # assistant: calls it made
    tool_call_id: str | None = None  # tool: the call this answers
    name: str | None = None

    @model_validator(mode="after")
    def _calls_are_the_assistants(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise PydanticCustomError("tool_calls_not_assistant", "only assistant messages carry tool_calls, not "
                                      "{role} ones", {"role": self.role})
        return self

    def text(self) -> str:
        """Plain text of the message (text content parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Request):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS), AsInt] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING), AsInt] | None = None
    response_format: ResponseFormat | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
