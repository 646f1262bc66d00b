"""JsonCloser: where a partial document stands, and the bytes that end it soonest."""

from __future__ import annotations

import pytest

from workers.grammar.json_closer import JsonCloser


def _after(text: str) -> bytes:
    closer = JsonCloser()
    closer.feed(text.encode())
    return closer.preferences()


@pytest.mark.parametrize(("text", "first"), [
    ('{"name": "Ada', '"'),  # close the string
    ('{"name": "a\\', "n"),  # finish the escape first: a quote here would stay inside the string
    ('{"name": "\\u00', "0"),
    ('{"a": 12', "}"),  # end the number by closing its object
    ('[1, 2', "]"),
    ('{"a": [', "]"),  # an empty array is the shortest value
    ('{"a": {', "}"),
    ('{"a": ', "0"),  # a value must start: a digit is shortest
    ('{"a": "x"', "}"),
    ('{"a": "x", ', '"'),  # after a comma in an object only a key can come
    ('{"a"', ":"),
    ('{"a": {"b": [1, {"c": "d"}', "]"),
])
def test_first_preference(text: str, first: str) -> None:
    assert _after(text)[:1] == first.encode()


def test_a_literal_is_left_to_the_grammar_and_whitespace_is_a_last_resort() -> None:
    assert _after('{"a": tr') == b""
    assert _after('{"a": true').startswith(b"}")
    assert _after('{"a": 1').endswith(b"0123456789")
    assert _after('{"a": 1, ').endswith(b" ")


def test_multibyte_text_is_string_content_and_copies_are_independent() -> None:
    closer = JsonCloser()
    closer.feed('{"k": "日本'.encode())
    copy = closer.copy()
    copy.feed(b'"}')
    assert closer.preferences()[:1] == b'"'
    assert copy.preferences() == b""  # the document is complete: nothing to prefer
