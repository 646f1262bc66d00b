"""Structured-output fields of OpenAI and vLLM requests (pydantic, at the HTTP edge only).

OpenAI's `response_format` (chat) and vLLM's `structured_outputs` extra (chat and
completions; vLLM 0.12 replaced its `guided_*` fields with it). Everything here changes
what the model may write, so an option we do not implement is a 400 naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class JsonSchemaFormat(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    # `schema` would shadow a BaseModel attribute; the wire name stays "schema".
    json_schema: dict = Field(alias="schema")
    strict: bool | None = None  # strict: unknown schema keywords are errors; otherwise ignored


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")]


class StructuredOutputs(_Strict):
    """vLLM's extra: exactly one of these. Its other keys (whitespace_pattern, structural_tag,
    disable_any_whitespace, ...) are not implemented: 400."""

    json_: dict | Annotated[str, Field(min_length=1)] | None = Field(default=None, alias="json")
    regex: Annotated[str, Field(min_length=1)] | None = None
    choice: Annotated[list[str], Field(min_length=1)] | None = None
    grammar: Annotated[str, Field(min_length=1)] | None = None
    json_object: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        given = [name for name, value in (("json", self.json_), ("regex", self.regex), ("choice", self.choice),
                                          ("grammar", self.grammar), ("json_object", self.json_object or None))
                 if value is not None]
        if len(given) != 1:
            raise PydanticCustomError("structured_outputs_not_one", "set exactly one of json, regex, choice, grammar, "
                                      "json_object (got {given})", {"given": ", ".join(given) or "none"})
        return self


# Fields other servers take that would change the output; refused by name, not ignored.
LEGACY_FIELDS = {
    "guided_json": "structured_outputs.json",
    "guided_regex": "structured_outputs.regex",
    "guided_choice": "structured_outputs.choice",
    "guided_grammar": "structured_outputs.grammar",
    "guided_whitespace_pattern": None,
    "guided_decoding_backend": None,
    "structural_tag": None,
    "functions": "tools",
    "function_call": "tool_choice",
}
