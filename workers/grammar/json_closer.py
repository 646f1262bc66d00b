"""Where a partial JSON document stands, and which characters bring it to an end soonest.

The matcher uses this to close a JSON output before max_tokens runs out: a model that
keeps writing one long string (a random-weight preset does, and so can a real model)
would otherwise end with "length" and a document that does not parse. The grammar still
decides what is legal; this only ranks the legal characters by how quickly they finish
the document: close the open string, end the number, close the innermost container, and
for a value that must still be written, the shortest one (a digit, "", [], {}, null...).
Pure Python over bytes: JSON's structure is ASCII, so multibyte text is string content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto


class _At(Enum):
    VALUE = auto()  # a value must start here (top level, after ':' or ',' in an array, after '[')
    KEY = auto()  # a key must start here (after '{' or ',' in an object)
    COLON = auto()  # after a key
    AFTER_VALUE = auto()  # a value just ended
    STRING = auto()
    ESCAPE = auto()  # after a backslash in a string
    UNICODE = auto()  # inside \uXXXX
    NUMBER = auto()
    LITERAL = auto()  # inside true, false or null
    DONE = auto()  # the top-level value ended


_WHITESPACE = b" \t\n\r"
_NUMBER_BYTES = b"0123456789+-.eE"
# Shortest values first: one digit, then two-byte ones, then the literals. The grammar
# rules out those its schema forbids.
_VALUE_STARTS = b'0123456789"[{ntf-'
_LITERAL_LENGTHS = {ord("t"): 3, ord("f"): 4, ord("n"): 3}  # bytes left after the first


@dataclass
class JsonCloser:
    _at: _At = _At.VALUE
    _stack: list[int] = field(default_factory=list)  # open containers: ord('{') or ord('[')
    _is_first: bool = True  # no item yet in the innermost container
    _is_key: bool = False  # the open string is a key
    _left: int = 0  # bytes left in a \u escape or a literal

    def copy(self) -> JsonCloser:
        return JsonCloser(self._at, list(self._stack), self._is_first, self._is_key, self._left)

    def feed(self, data: bytes) -> None:
        for byte in data:
            self._feed(byte)

    def preferences(self) -> bytes:
        """Bytes that finish the document soonest, best first (empty: nothing to prefer,
        e.g. inside a literal the grammar already forces). Whitespace comes last: a
        grammar with fixed separators (", " and ": ") needs it before the next item."""
        at = self._at
        if at is _At.STRING:
            return b'"'
        if at is _At.ESCAPE:
            return b"n"
        if at is _At.UNICODE:
            return b"0"
        if at is _At.COLON:
            return b": "
        if at is _At.KEY:
            return (b'}"' if self._is_first else b'"') + b" "
        if at is _At.VALUE:
            in_empty_array = self._stack and self._is_first and self._stack[-1] == ord("[")
            return (b"]" if in_empty_array else b"") + _VALUE_STARTS + b" "
        if at is _At.AFTER_VALUE:
            return self._closer() + b", "
        if at is _At.NUMBER:
            return self._closer() + b", 0123456789"
        return b""

    def _closer(self) -> bytes:
        if not self._stack:
            return b""  # top level: only eos ends it, and the matcher offers eos itself
        return b"}" if self._stack[-1] == ord("{") else b"]"

    def _feed(self, byte: int) -> None:
        at = self._at
        if at is _At.STRING:
            if byte == ord("\\"):
                self._at = _At.ESCAPE
            elif byte == ord('"'):
                self._at = _At.COLON if self._is_key else _At.AFTER_VALUE
            return
        if at is _At.ESCAPE:
            self._at, self._left = (_At.UNICODE, 4) if byte == ord("u") else (_At.STRING, 0)
            return
        if at in (_At.UNICODE, _At.LITERAL):
            self._left -= 1
            if self._left <= 0:
                self._at = _At.STRING if at is _At.UNICODE else _At.AFTER_VALUE
            return
        if at is _At.NUMBER:
            if byte in _NUMBER_BYTES:
                return
            self._at = _At.AFTER_VALUE  # the number ended; this byte comes after it
            at = _At.AFTER_VALUE
        if byte in _WHITESPACE:
            return
        if at is _At.VALUE:
            self._start_value(byte)
        elif at is _At.KEY:
            if byte == ord('"'):
                self._at, self._is_key = _At.STRING, True
            elif byte == ord("}"):
                self._close()
        elif at is _At.COLON:
            if byte == ord(":"):
                self._at = _At.VALUE
        elif at is _At.AFTER_VALUE:
            if byte == ord(","):
                self._is_first = False
                self._at = _At.KEY if self._stack and self._stack[-1] == ord("{") else _At.VALUE
            elif byte in (ord("}"), ord("]")):
                self._close()

    def _start_value(self, byte: int) -> None:
        if byte == ord('"'):
            self._at, self._is_key = _At.STRING, False
        elif byte in (ord("{"), ord("[")):
            self._stack.append(byte)
            self._at, self._is_first = (_At.KEY if byte == ord("{") else _At.VALUE), True
        elif byte == ord("]") and self._stack and self._stack[-1] == ord("["):
            self._close()
        elif byte in _LITERAL_LENGTHS:
            self._at, self._left = _At.LITERAL, _LITERAL_LENGTHS[byte]
        elif byte in _NUMBER_BYTES:
            self._at = _At.NUMBER

    def _close(self) -> None:
        if self._stack:
            self._stack.pop()
        self._is_first = False
        self._at = _At.AFTER_VALUE if self._stack else _At.DONE
