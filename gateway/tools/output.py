"""A tools job's output as OpenAI shapes it: content and tool_calls, and the finish reason.

tool_choice "auto" and "required" read calls out of the text (parser.py); a named function
was forced to write only its arguments, so the whole output is that one call's arguments.
"stop" becomes "tool_calls" when the answer called tools (auto, required), as OpenAI
reports it; a named call keeps "stop", as OpenAI's does.
"""

from __future__ import annotations

from typing import Any

from gateway.tools.parser import ParsedDelta, ToolCallDelta, ToolCallParser, new_call_id
from gateway.tools.plan import ToolPlan


class ToolOutput:
    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self._parser = ToolCallParser(plan.names, plan.parallel) if plan.parses_calls else None
        self._named_id: str | None = None

    @property
    def num_calls(self) -> int:
        if self._parser is not None:
            return self._parser.num_calls
        return 1 if self._named_id is not None else 0

    def feed(self, text: str, is_last: bool) -> ParsedDelta:
        if self._parser is None:
            return self._named(text, is_last)
        delta = self._parser.feed(text)
        if is_last:
            rest = self._parser.finish()
            delta = ParsedDelta(delta.content + rest.content, delta.tool_calls + rest.tool_calls)
        return delta

    def finish_reason(self, reason: str | None) -> str | None:
        if reason == "stop" and self._parser is not None and self._parser.num_calls:
            return "tool_calls"
        return reason

    def _named(self, text: str, is_last: bool) -> ParsedDelta:
        calls: list[ToolCallDelta] = []
        if self._named_id is None and (text or is_last):
            self._named_id = new_call_id()
            calls.append(ToolCallDelta(0, id=self._named_id, name=self.plan.named))
        if text:
            calls.append(ToolCallDelta(0, arguments=text))
        return ParsedDelta(tool_calls=calls)


def tool_calls_json(deltas: list[ToolCallDelta]) -> list[dict[str, Any]]:
    """Stream deltas as OpenAI's delta.tool_calls, consecutive pieces of a call merged."""
    out: list[dict[str, Any]] = []
    for d in deltas:
        if out and out[-1]["index"] == d.index and d.id is None:
            out[-1]["function"]["arguments"] += d.arguments
            continue
        entry: dict[str, Any] = {"index": d.index, "function": {"arguments": d.arguments}}
        if d.id is not None:
            entry.update(id=d.id, type="function")
            entry["function"]["name"] = d.name
        out.append(entry)
    return out


def whole_tool_calls(deltas: list[ToolCallDelta]) -> list[dict[str, Any]]:
    """All deltas of an answer as message.tool_calls."""
    calls: dict[int, dict[str, Any]] = {}
    for d in deltas:
        if d.id is not None:
            calls[d.index] = {"id": d.id, "type": "function", "function": {"name": d.name, "arguments": ""}}
        if d.index in calls:
            calls[d.index]["function"]["arguments"] += d.arguments
    return [calls[i] for i in sorted(calls)]


def rewrite_message(plan: ToolPlan, choice: dict[str, Any]) -> None:
    """A whole chat choice (non-streaming): its text read for calls, in place."""
    out = ToolOutput(plan)
    delta = out.feed(choice["message"].get("content") or "", is_last=True)
    calls = whole_tool_calls(delta.tool_calls)
    if calls:
        choice["message"]["content"] = delta.content or None
        choice["message"]["tool_calls"] = calls
    choice["finish_reason"] = out.finish_reason(choice["finish_reason"])
