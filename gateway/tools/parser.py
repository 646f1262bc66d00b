"""The model's tool calls, parsed out of its text as it streams.

Two formats, whichever the model writes:
- Hermes / Qwen2: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, with
  ordinary text around them;
- Llama 3 JSON: the whole answer is `{"name": ..., "parameters": {...}}` (several separated
  by `;`, or a JSON array of them). Forced calls (tool_choice "required") come as such an
  array, so they parse here too.

Text that might still become a call is held back, never shown twice: a possible start of
`<tool_call>`, or an answer that starts with `{` until its first key settles it. A call is
announced (index, id, name) as soon as its name is known to be one of the request's tools,
then its arguments stream as the model writes them, as OpenAI streams them. Something that
looked like a call but is not one (an unknown name, broken JSON) comes back as content.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from gateway.tools.call_scanner import CallScanner, Role

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
ARGUMENT_KEYS = ("arguments", "parameters")


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str | None = None  # the first delta of a call carries id and name
    name: str | None = None
    arguments: str = ""


@dataclass
class ParsedDelta:
    content: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.content and not self.tool_calls


class _Mode(Enum):
    START = auto()  # nothing but whitespace yet
    TEXT = auto()
    CALL = auto()  # inside a call's JSON object
    CLOSE_TAG = auto()  # after a Hermes call's object, expecting </tool_call>
    BETWEEN = auto()  # after a JSON-style call (or '['), expecting another or the end


@dataclass
class _Call:
    index: int
    is_hermes: bool
    scanner: CallScanner = field(default_factory=CallScanner)
    raw: list[str] = field(default_factory=list)  # everything consumed for it, to give back as content
    id: str | None = None  # set once announced
    num_args_emitted: int = 0  # characters of the arguments value already streamed
    is_suppressed: bool = False  # a second call when parallel_tool_calls is false


class ToolCallParser:
    def __init__(self, tool_names: frozenset[str], parallel: bool = True,
                 make_id: Callable[[], str] = new_call_id) -> None:
        self.tool_names = tool_names
        self.parallel = parallel
        self._make_id = make_id
        self._mode = _Mode.START
        self._pending = ""  # text held back (START, TEXT, CLOSE_TAG)
        self._json_prefix = ""  # what a JSON-style answer consumed before its first call was announced
        self._call: _Call | None = None
        self._num_calls = 0  # calls announced
        self._out = ParsedDelta()

    @property
    def num_calls(self) -> int:
        return self._num_calls

    def feed(self, text: str) -> ParsedDelta:
        for ch in text:
            self._step(ch)
        return self._take()

    def finish(self) -> ParsedDelta:
        """The end of the output: release what was held back."""
        mode, call = self._mode, self._call
        if mode is _Mode.CALL and call is not None:
            if call.id is None:
                self._give_back(call)
            else:
                self._stream_arguments(call, final=True)
        elif mode in (_Mode.START, _Mode.TEXT):
            if not (self._num_calls and self._pending.isspace()):
                self._emit(self._pending)
        elif mode is _Mode.BETWEEN and self._num_calls == 0:
            self._emit(self._json_prefix)
        self._pending, self._json_prefix, self._call = "", "", None
        return self._take()

    # -- one character ------------------------------------------------------------------

    def _step(self, ch: str) -> None:
        mode = self._mode
        if mode is _Mode.START:
            if ch.isspace():
                self._pending += ch
            elif ch in "{[":
                self._json_prefix, self._pending = self._pending, ""
                self._start_json(ch)
            else:
                self._mode = _Mode.TEXT
                self._text(ch)
        elif mode is _Mode.TEXT:
            self._text(ch)
        elif mode is _Mode.CALL and self._call is not None:
            self._call_char(self._call, ch)
        elif mode is _Mode.CLOSE_TAG:
            self._close_tag(ch)
        else:
            self._between(ch)

    def _start_json(self, ch: str) -> None:
        if ch == "[":
            self._json_prefix += ch
            self._mode = _Mode.BETWEEN
        else:
            self._call_char(self._begin_call(is_hermes=False), ch)

    def _text(self, ch: str) -> None:
        self._pending += ch
        if self._pending.endswith(TOOL_CALL_OPEN):
            self._emit(self._pending[: -len(TOOL_CALL_OPEN)].rstrip())
            self._pending = ""
            self._begin_call(is_hermes=True).raw.append(TOOL_CALL_OPEN)
            return
        # Release all but a tail that may still become the tag, and trailing whitespace
        # (between calls it is dropped, not shown as content).
        keep = _partial_tag_length(self._pending)
        release = self._pending[: len(self._pending) - keep]
        stripped = release.rstrip()
        if stripped:
            self._emit(stripped)
            self._pending = self._pending[len(stripped):]

    def _begin_call(self, is_hermes: bool) -> _Call:
        self._call = _Call(index=self._num_calls, is_hermes=is_hermes)
        self._mode = _Mode.CALL
        return self._call

    def _call_char(self, call: _Call, ch: str) -> None:
        call.raw.append(ch)
        role = call.scanner.feed(ch)
        if call.scanner.is_broken:
            self._give_back(call)
            self._mode = _Mode.TEXT
            return
        if call.id is None:
            self._maybe_announce(call)
        elif role is Role.VALUE and call.scanner.key in ARGUMENT_KEYS:
            self._stream_arguments(call, final=False)
        if role is Role.END:
            self._end_call(call)

    def _maybe_announce(self, call: _Call) -> None:
        raw_name = call.scanner.values.get("name")
        if raw_name is None:
            return
        try:
            name = json.loads(raw_name)
        except ValueError:
            name = None
        if not isinstance(name, str) or name not in self.tool_names:
            return  # not a call to one of our tools: given back as content when it ends
        call.id = self._make_id()
        self._num_calls += 1
        call.is_suppressed = not self.parallel and call.index > 0
        self._json_prefix = ""
        if not call.is_suppressed:
            self._out.tool_calls.append(ToolCallDelta(call.index, id=call.id, name=name))
        self._stream_arguments(call, final=call.scanner.is_done)

    def _stream_arguments(self, call: _Call, final: bool) -> None:
        """Stream the arguments value written so far; trailing whitespace waits (it may be
        the gap before the object's next key). A value that is a JSON string (some models
        quote their arguments) is sent whole, decoded, at the end."""
        scanner = call.scanner
        key = next((k for k in ARGUMENT_KEYS if k in scanner.values), None)
        if key is not None:
            text = scanner.values[key]
        elif scanner.key in ARGUMENT_KEYS:
            text = scanner.current_value().lstrip()
        else:
            text = "{}" if final else ""
        if text.startswith('"'):
            if not final and key is None:
                return
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = text
            text = decoded if isinstance(decoded, str) else text
        stable = text if final or key is not None else text.rstrip()
        if len(stable) > call.num_args_emitted and not call.is_suppressed:
            self._out.tool_calls.append(ToolCallDelta(call.index, arguments=stable[call.num_args_emitted:]))
        call.num_args_emitted = max(call.num_args_emitted, len(stable))

    def _end_call(self, call: _Call) -> None:
        if call.id is None:
            self._give_back(call)
            self._mode = _Mode.TEXT
            return
        self._stream_arguments(call, final=True)
        self._call = None
        self._mode = _Mode.CLOSE_TAG if call.is_hermes else _Mode.BETWEEN

    def _give_back(self, call: _Call) -> None:
        """Not a call after all: everything it consumed is content."""
        self._emit(self._json_prefix + "".join(call.raw))
        self._json_prefix = ""
        self._call = None

    def _close_tag(self, ch: str) -> None:
        self._pending += ch
        tail = self._pending.lstrip()
        if tail == TOOL_CALL_CLOSE:
            self._pending = ""
            self._mode = _Mode.TEXT
        elif not TOOL_CALL_CLOSE.startswith(tail):
            text, self._pending = self._pending, ""  # no closing tag: what follows is text again
            self._mode = _Mode.TEXT
            for c in text:
                self._text(c)

    def _between(self, ch: str) -> None:
        if ch.isspace() or ch in ",;":
            if self._num_calls == 0:
                self._json_prefix += ch
        elif ch == "{":
            self._call_char(self._begin_call(is_hermes=False), ch)
        elif ch == "]":
            if self._num_calls == 0:
                self._emit(self._json_prefix + ch)
            self._json_prefix = ""
            self._mode = _Mode.TEXT
        else:
            self._emit(self._json_prefix if self._num_calls == 0 else "")
            self._json_prefix = ""
            self._mode = _Mode.TEXT
            self._text(ch)

    # -- output -------------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        if text:
            self._out.content += text

    def _take(self) -> ParsedDelta:
        out, self._out = self._out, ParsedDelta()
        return out


def _partial_tag_length(text: str) -> int:
    """Length of the longest tail of text that is a proper prefix of <tool_call>."""
    for n in range(min(len(text), len(TOOL_CALL_OPEN) - 1), 0, -1):
        if TOOL_CALL_OPEN.startswith(text[-n:]):
            return n
    return 0
