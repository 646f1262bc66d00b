"""Server-sent events for a chat job with tools: content and tool-call deltas as OpenAI sends them.

The first event carries the role; tool calls arrive as delta.tool_calls entries (index, id,
type and function.name first, then function.arguments fragments); events with nothing in
them are skipped; the last carries the finish reason ("tool_calls" when the answer called).
"""

from __future__ import annotations

from gateway import openai_format as fmt
from gateway.job import Chunk, Job
from gateway.tools.output import ToolOutput, tool_calls_json


class ToolStream:
    """One choice's stream (a request with n > 1 has one per choice)."""

    def __init__(self, job: Job, index: int = 0) -> None:
        if job.tools is None:
            raise ValueError(f"{job.request_id}: a tool stream needs a job with tools")
        self.job = job
        self.index = index
        self.output = ToolOutput(job.tools)
        self._is_started = False

    def event(self, model: str, chunk: Chunk) -> str | None:
        """The event for one worker chunk, or None when it adds nothing a client can see yet."""
        first, self._is_started = not self._is_started, True
        is_last = chunk.finish_reason is not None
        parsed = self.output.feed(chunk.text, is_last)
        delta: dict = {"role": "assistant"} if first else {}
        if parsed.content or (first and not parsed.tool_calls):
            delta["content"] = parsed.content
        elif first:
            delta["content"] = None
        if parsed.tool_calls:
            delta["tool_calls"] = tool_calls_json(parsed.tool_calls)
        if not (first or is_last or parsed.content or parsed.tool_calls or chunk.logprobs):
            return None
        finish = self.output.finish_reason(chunk.finish_reason) if is_last else None
        return fmt.chat_delta_event(self.job, model, self.index, delta, finish, list(chunk.logprobs))
