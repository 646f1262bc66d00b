"""One JSON object read character by character, for the parts a tool call needs.

Tracks nesting, strings and escapes, and for each top-level key the raw text of its value.
The parser streams the arguments value as it arrives, so the scanner reports each
character's role (see `feed`) rather than parsing at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum, auto


class Role(Enum):
    STRUCTURE = auto()  # braces, keys, colons, commas, whitespace between top-level items
    VALUE = auto()  # part of the value of top-level key `key`
    END = auto()  # the character that closed the object


@dataclass
class CallScanner:
    depth: int = 0
    values: dict[str, str] = field(default_factory=dict)  # top-level key -> raw value text, once complete
    key: str | None = None  # the top-level key whose value is being read
    is_done: bool = False
    is_broken: bool = False  # not a JSON object
    _in_string: bool = False
    _escape: bool = False
    _reading_key: bool = False  # the open top-level string is a key
    _key_chars: list[str] = field(default_factory=list)
    _value_chars: list[str] = field(default_factory=list)
    _last_key: str | None = None

    def feed(self, ch: str) -> Role:
        """Advance by one character; what it was part of."""
        if self.is_done or self.is_broken:
            return Role.END
        if self._in_string:
            return self._string_char(ch)
        if self.depth == 0:
            if ch == "{":
                self.depth = 1
            elif not ch.isspace():
                self.is_broken = True
            return Role.STRUCTURE
        if self.depth == 1 and self.key is None:
            return self._top_level(ch)
        # Inside the value of self.key.
        if self.depth == 1 and ch in ",}" and self.key is not None:  # key is set here (see above)
            self.values[self.key] = "".join(self._value_chars).strip()
            self.key = None
            return self._top_level(ch)
        if ch == '"':
            self._in_string = True
        elif ch in "{[":
            self.depth += 1
        elif ch in "}]":
            self.depth -= 1
        self._value_chars.append(ch)
        return Role.VALUE

    def current_value(self) -> str:
        """The raw text of the value being read, so far."""
        return "".join(self._value_chars)

    def _top_level(self, ch: str) -> Role:
        if ch == '"':
            self._in_string, self._reading_key = True, True
            self._key_chars.clear()
        elif ch == ":":
            self.key = self._last_key or ""
            self._value_chars.clear()
        elif ch == "}":
            self.depth = 0
            self.is_done = True
            return Role.END
        elif ch != "," and not ch.isspace():
            self.is_broken = True
        return Role.STRUCTURE

    def _string_char(self, ch: str) -> Role:
        if self._escape:
            self._escape = False
        elif ch == "\\":
            self._escape = True
        elif ch == '"':
            self._in_string = False
        if self._reading_key:
            if self._in_string:
                self._key_chars.append(ch)
            else:
                self._reading_key = False
                self._last_key = _decode_key("".join(self._key_chars))
            return Role.STRUCTURE
        self._value_chars.append(ch)
        return Role.VALUE

def _decode_key(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw
