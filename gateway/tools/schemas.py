"""The tool fields of an OpenAI chat request (pydantic, at the HTTP edge only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's rule for function names


class _Strict(BaseModel):
    # Tool definitions change what the model sees and may do: a field we do not know is an
    # error naming it, never silently dropped.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FunctionDefinition(_Strict):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    description: str | None = None
    parameters: dict | None = None  # a JSON Schema of the arguments object; none means no arguments
    strict: bool | None = None  # enforced whenever the call is forced (tool_choice required or named)


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Strict):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    name: str
    arguments: str  # JSON text, as the model wrote it


class MessageToolCall(BaseModel):
    """A tool call in an assistant message of the history."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall
