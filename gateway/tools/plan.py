"""What a chat request asks of tools: which the template shows, whether a call is forced,
and how the output is read back. Built once at intake; refusals are 400s naming the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from gateway.constraint import Constraint
from gateway.errors import bad_request
from gateway.tools.grammar import arguments_schema, required_calls_schema
from gateway.tools.schemas import NamedToolChoice, Tool, ToolChoice

ToolMode = Literal["none", "auto", "required", "named"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters_json: str = ""  # JSON Schema text; empty: the function takes no arguments
    strict: bool = False


@dataclass(frozen=True)
class ToolPlan:
    tools: tuple[ToolSpec, ...]
    mode: ToolMode
    named: str | None = None  # mode "named": the function every answer calls
    parallel: bool = True  # several calls in one answer

    @property
    def shown_tools(self) -> tuple[ToolSpec, ...]:
        """What the chat template renders: nothing when the model must not call tools."""
        return () if self.mode == "none" else self.tools

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tools)

    @property
    def parses_calls(self) -> bool:
        """The output is read for calls in the model's own format (or the forced array)."""
        return self.mode in ("auto", "required")

    def constraint(self) -> Constraint | None:
        """The grammar that forces the call, for "required" and a named function."""
        if self.mode == "required":
            schema = required_calls_schema(self.tools, self.parallel)
            strict = all(t.strict for t in self.tools)
        elif self.mode == "named":
            tool = next(t for t in self.tools if t.name == self.named)
            schema, strict = arguments_schema(tool), tool.strict
        else:
            return None
        # Non-strict functions (OpenAI's default) may use schema keywords the engine lacks.
        return Constraint("json_schema", source=json.dumps(schema), lenient=not strict)


def tool_plan(tools: list[Tool] | None, choice: ToolChoice | None, parallel: bool | None) -> ToolPlan | None:
    if not tools:
        if choice not in (None, "none"):
            raise bad_request("tool_choice needs tools: this request has none", param="tool_choice",
                              code="tools_missing")
        if parallel is not None:
            raise bad_request("parallel_tool_calls needs tools: this request has none", param="parallel_tool_calls",
                              code="tools_missing")
        return None
    specs = tuple(_spec(i, t) for i, t in enumerate(tools))
    names = [s.name for s in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise bad_request(f"two tools are named {duplicate!r}", param="tools", code="duplicate_tool_name")
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise bad_request(f"tool_choice names {choice.function.name!r}, which is not among tools: "
                              f"{', '.join(names)}", param="tool_choice", code="unknown_tool")
        return ToolPlan(specs, "named", named=choice.function.name, parallel=parallel is not False)
    return ToolPlan(specs, choice or "auto", parallel=parallel is not False)


def _spec(index: int, tool: Tool) -> ToolSpec:
    f = tool.function
    parameters = f.parameters
    if parameters is not None and parameters.get("type", "object") != "object":
        raise bad_request(f"tools[{index}].function.parameters must describe a JSON object, got type "
                          f"{parameters.get('type')!r}", param=f"tools.{index}.function.parameters",
                          code="tool_parameters_not_object")
    return ToolSpec(name=f.name, description=f.description or "",
                    parameters_json=json.dumps(parameters) if parameters is not None else "",
                    strict=bool(f.strict))
