"""JSON Schemas that force tool calls, for tool_choice "required" and a named function.

"required": a JSON array of one or more {"name", "arguments"} objects, each name one of
the tools with that tool's own arguments schema; the tool-call parser reads it like a
Llama 3 answer. A named function: only its arguments object, which becomes the call's
arguments. Both are ordinary json_schema constraints for the worker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.tools.plan import ToolSpec

NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    return json.loads(tool.parameters_json) if tool.parameters_json else NO_ARGUMENTS


def required_calls_schema(tools: Sequence[ToolSpec], parallel: bool) -> dict[str, Any]:
    calls = [{"type": "object",
              "properties": {"name": {"const": t.name}, "arguments": arguments_schema(t)},
              "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
    schema: dict[str, Any] = {"type": "array", "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
                              "minItems": 1}
    if not parallel:
        schema["maxItems"] = 1
    return schema
